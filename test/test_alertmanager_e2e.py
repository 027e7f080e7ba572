"""From a fault on a robot to a notification: real nodes, the real Prometheus, the real Alertmanager.

One robot (test/demo_stack.py's processes, with sim_robot's camera on at 5 Hz and listed in the topic
monitor) is scraped by Prometheus with the shipped prometheus.yml and alerts.yml (1 s scrapes and
evaluations, every `for:` 2 s, external label robot), which sends to Alertmanager running the shipped
alertmanager.yml (group_wait 1 s, group_interval 2 s; every destination rewritten to a webhook sink
on 127.0.0.1, test/alerting.py). Faults are injected through sim_robot's parameters, as
`ros2 param set` does:

- the watchdog reaches its own receiver, `heartbeat`, again and again, and nothing else does;
- `camera.paused`: exactly one notification, on `pager`, grouped by robot and alert, naming the robot
  and the camera topic (its text, rendered by amtool with the shipped templates, too), within
  detection + `for` + group_wait; resuming gives exactly one resolved notification;
- `camera.stamp_lag`: the critical LiquidEdgeTopicError is notified, its warning twin
  LiquidEdgeTopicLatencyHigh (same robot, same topic) reaches Alertmanager and is held back by the
  inhibition, never notified while the critical one fires.

Each notification's delay from the fault is printed (`-s`), as measured here.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
import rclpy
import yaml

from alerting import ALERTMANAGER, AMTOOL, Alertmanager, Notification, WebhookSink, alerting_section, \
    local_config, render
from conftest import wait_for
from demo_stack import JOBS, DemoStack, _NoAliases
from ros_helpers import sample_value
from test_prometheus_e2e import PROMETHEUS, ParameterSetter, PrometheusServer, rewritten_configs

NS = '/am_e2e'
ROBOT = 'am_e2e_robot'
CAMERA = f'{NS}/camera/image_raw'
CAMERA_RATE = 5.0          # Hz: 921,600-byte images; 30 Hz would take a core of this 2-core machine
FOR_S = 2.0                # every rule's `for:` in this test (test_prometheus_e2e.rewritten_configs)
INTERVAL_S = 1.0           # scrape and evaluation
GROUP_WAIT_S, GROUP_INTERVAL_S = 1.0, 2.0
STALE_TIMEOUT_S = 1.0      # demo_stack's topic defaults
#: Detection before a rule's `for:` starts: the monitor sees the silence (stale_timeout and an update
#: period), Prometheus scrapes it and evaluates (an interval each), plus the test's own polling.
DETECT_S = STALE_TIMEOUT_S + 0.25 + 2 * INTERVAL_S + 1.0

pytestmark = pytest.mark.skipif(PROMETHEUS is None or ALERTMANAGER is None or AMTOOL is None,
                                reason='needs Debian packages prometheus and prometheus-alertmanager')


class CameraStack(DemoStack):
    """The demo stack with sim_robot's camera on at CAMERA_RATE and listed in the topic monitor."""

    def __init__(self, ns: str, tmp: Path, robot: str) -> None:
        super().__init__(ns, tmp, robot)
        params = yaml.safe_load(self.params_file.read_text())
        topic = params['/**/topic_monitor']['ros__parameters']
        topic['topics'].append('camera')
        topic['topic']['camera'] = {'name': 'camera/image_raw', 'expected_rate': CAMERA_RATE,
                                    'tolerance': 0.2, 'max_latency': 0.05}
        self.params_file.write_text(yaml.dump(params, Dumper=_NoAliases))

    def start(self) -> 'CameraStack':
        self._start('sim_robot', '-p', 'scan.enabled:=false', '-p', f'camera.rate:={CAMERA_RATE}')
        self.start_extra_robot()
        for node in JOBS:
            self._start(node, '--params-file', str(self.params_file))
        return self


@pytest.fixture(scope='module')
def stack(tmp_path_factory) -> Iterator[CameraStack]:
    demo = CameraStack(NS, tmp_path_factory.mktemp('am_stack'), ROBOT).start()
    try:
        demo.wait_until_measured()
        wait_for(lambda: sample_value(demo.scrape('topic_monitor'), 'liquid_edge_topic_rate_hz',
                                      topic=CAMERA), 30, f'{CAMERA} measured')
        yield demo
    finally:
        codes = demo.stop()
    assert set(codes.values()) == {0}, f'{codes}, died before stop: {demo.died_early}\n{demo.logs()}'


@pytest.fixture(scope='module')
def sink() -> Iterator[WebhookSink]:
    s = WebhookSink()
    yield s
    s.close()
    print('--- notifications received:', *(n.brief() for n in s.received), sep='\n  ')


@pytest.fixture(scope='module')
def alertmanager(sink, tmp_path_factory) -> Iterator[Alertmanager]:
    tmp = tmp_path_factory.mktemp('alertmanager')
    am = Alertmanager(local_config(tmp, sink, group_wait=f'{GROUP_WAIT_S:g}s',
                                   group_interval=f'{GROUP_INTERVAL_S:g}s'), tmp)
    try:
        wait_for(am.ready, 30, 'alertmanager /-/ready')
        yield am
    finally:
        am.stop()
        print(f'--- alertmanager.log (tail)\n{am.output()[-2000:]}')


@pytest.fixture(scope='module')
def prometheus(stack, alertmanager, tmp_path_factory) -> Iterator[PrometheusServer]:
    tmp = tmp_path_factory.mktemp('prometheus')
    path = rewritten_configs(tmp, stack.ports)
    config = yaml.safe_load(path.read_text())
    config['global']['external_labels'] = {'robot': ROBOT}
    config['alerting'] = alerting_section(alertmanager)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    # Firing alerts are sent again every resend delay (default 1 m): what Prometheus evaluated before
    # it had found the Alertmanager (the watchdog, at its first evaluation) is dropped until then.
    server = PrometheusServer(path, tmp, '--rules.alert.resend-delay=1s')
    try:
        wait_for(server.ready, 30, 'prometheus /-/ready')
        yield server
    finally:
        server.stop()


@pytest.fixture(scope='module')
def sim_params(stack) -> Iterator[ParameterSetter]:
    rclpy.init()
    setter = ParameterSetter(f'{NS}/sim_robot')
    try:
        yield setter
    finally:
        setter.close()
        rclpy.try_shutdown()


def about_camera(sink: WebhookSink, since: float, alertname: str = None) -> List[Notification]:
    """Notifications since `since` with an alert about the camera topic (of that alert)."""
    labels = {'topic': CAMERA, **({'alertname': alertname} if alertname else {})}
    return [n for n in sink.notifications(since=since) if n.about(**labels)]


def camera_quiet(prometheus: PrometheusServer) -> bool:
    ok = prometheus.api('query', query=f'liquid_edge_topic_status{{topic="{CAMERA}"}} == 0')['result']
    active = [a for a in prometheus.api('alerts')['alerts'] if a['labels'].get('topic') == CAMERA]
    return bool(ok) and not active


def test_the_watchdog_reaches_only_the_heartbeat_receiver_and_repeats(prometheus, alertmanager, sink):
    beats = wait_for(lambda: len(b := sink.notifications('heartbeat')) >= 2 and b, 30,
                     'two heartbeats', last=lambda: [n.brief() for n in sink.received])
    for n in beats:
        assert n.path == '/heartbeat' and n.status == 'firing'
        assert n.group_labels == {'alertname': 'LiquidEdgeWatchdog', 'robot': ROBOT}
        assert [a['labels']['alertname'] for a in n.alerts] == ['LiquidEdgeWatchdog']
    # Sent again while unchanged (the route's repeat_interval), unlike any other alert.
    assert beats[1].at - beats[0].at >= 1.0
    assert not [n for n in sink.received if n.receiver != 'heartbeat' and n.about(alertname='LiquidEdgeWatchdog')]
    assert {n.path for n in sink.received} <= {'/pager', '/chat', '/heartbeat'}, 'nothing to Slack or email'


def test_a_paused_camera_gives_one_notification_naming_robot_and_topic_and_one_on_resume(
        stack, prometheus, alertmanager, sink, sim_params, tmp_path):
    wait_for(lambda: camera_quiet(prometheus), 30, f'{CAMERA} OK in Prometheus, no alert on it')
    t0 = time.time()
    sim_params.set('camera.paused', True)
    budget = DETECT_S + FOR_S + GROUP_WAIT_S
    first = wait_for(lambda: about_camera(sink, t0), budget + 10, 'a notification about the camera',
                     last=lambda: [n.brief() for n in sink.notifications(since=t0)])[0]
    fired_s = first.at - t0
    print(f'camera.paused -> {first.brief()} after {fired_s:.1f} s (for {FOR_S:g} s + group_wait '
          f'{GROUP_WAIT_S:g} s + detection)')
    assert first.receiver == 'pager' and first.path == '/pager' and first.status == 'firing'
    assert first.group_labels == {'alertname': 'LiquidEdgeTopicStale', 'robot': ROBOT}
    (alert,) = first.alerts
    assert alert['labels']['topic'] == CAMERA and alert['labels']['robot'] == ROBOT
    assert alert['labels']['severity'] == 'critical'
    assert fired_s <= budget + 2.0, f'{fired_s:.1f} s > detection {DETECT_S:g} + for + group_wait'
    # What a person reads (the shipped templates, rendered by amtool on this very notification).
    text = render('liquid_edge.text', first.body, tmp_path)
    title = text.splitlines()[0]
    assert title == f'[FIRING:1] {ROBOT}: Topic {CAMERA} on {ROBOT} is stale', text
    assert f'robot {ROBOT}, topic {CAMERA}; since ' in text and '(1 publishers)' in text, text
    assert 'viewPanel=5&var-robot=am_e2e_robot&var-topic=%2Fam_e2e%2Fcamera%2Fimage_raw' in text
    assert 'docs/RUNBOOKS.md#liquidedgetopicstale' in text
    print(f'  text: {title}')

    # Held for two more group intervals: nothing more about it (no repeat, no second group).
    wait_for(lambda: time.time() - first.at >= 2 * GROUP_INTERVAL_S + 1, 10, 'an observation window',
             interval=0.2)
    t1 = time.time()
    sim_params.set('camera.paused', False)
    resolved = wait_for(lambda: [n for n in about_camera(sink, t1) if n.status == 'resolved'],
                        DETECT_S + GROUP_INTERVAL_S + 15, 'the resolved notification',
                        last=lambda: [n.brief() for n in sink.notifications(since=t1)])[0]
    print(f'camera resumed -> {resolved.brief()} after {resolved.at - t1:.1f} s')
    assert resolved.receiver == 'pager' and resolved.group_labels == first.group_labels
    assert [(a['labels']['topic'], a['status']) for a in resolved.alerts] == [(CAMERA, 'resolved')]
    assert render('liquid_edge.text', resolved.body, tmp_path).startswith(f'[RESOLVED] {ROBOT}: ')
    wait_for(lambda: camera_quiet(prometheus), 20, f'{CAMERA} quiet again')
    wait_for(lambda: time.time() - resolved.at >= 2 * GROUP_INTERVAL_S + 1, 10,
             'an observation window', interval=0.2)
    assert about_camera(sink, t0) == [first, resolved], [n.brief() for n in about_camera(sink, t0)]


def test_a_critical_alert_holds_back_its_warning_twin(stack, prometheus, alertmanager, sink,
                                                       sim_params):
    wait_for(lambda: camera_quiet(prometheus), 30, f'{CAMERA} OK in Prometheus, no alert on it')
    t0 = time.time()
    # Stamps 0.5 s old: header latency above twice max_latency (ERROR: LiquidEdgeTopicError,
    # critical) and the 5-minute p95 above 100 ms (LiquidEdgeTopicLatencyHigh, warning).
    sim_params.set('camera.stamp_lag', 0.5)
    try:
        error = wait_for(lambda: about_camera(sink, t0, 'LiquidEdgeTopicError'), 40,
                         'LiquidEdgeTopicError notified',
                         last=lambda: [n.brief() for n in sink.notifications(since=t0)])[0]
        print(f'camera.stamp_lag 0.5 -> {error.brief()} after {error.at - t0:.1f} s')
        assert error.receiver == 'pager'

        def twin_held() -> List[Dict]:
            return [a for a in alertmanager.alerts(alertname='LiquidEdgeTopicLatencyHigh', topic=CAMERA)
                    if a['status']['inhibitedBy']]
        (twin,) = wait_for(twin_held, 40, 'the warning twin in Alertmanager, held back',
                           last=lambda: alertmanager.alerts(topic=CAMERA))
        (source,) = alertmanager.alerts(alertname='LiquidEdgeTopicError', topic=CAMERA)
        assert twin['status'] == {'state': 'suppressed', 'silencedBy': [],
                                  'inhibitedBy': [source['fingerprint']]}, twin['status']
        assert twin['labels']['severity'] == 'warning' and twin['labels']['robot'] == ROBOT
        # Held back for two group intervals while the critical one fires.
        held_at = time.time()
        wait_for(lambda: time.time() - held_at >= 2 * GROUP_INTERVAL_S + 1, 10,
                 'an observation window', interval=0.2)
        assert twin_held(), 'the twin is still held back'
    finally:
        cleared = time.time()
        sim_params.set('camera.stamp_lag', 0.0)
    assert not about_camera(sink, t0, 'LiquidEdgeTopicLatencyHigh'), 'the twin was notified'
    resolved = wait_for(lambda: [n for n in about_camera(sink, cleared, 'LiquidEdgeTopicError')
                                 if n.status == 'resolved'], 30, 'LiquidEdgeTopicError resolved')[0]
    # Once the critical one stops firing, the twin, if still firing (its p95 is over 5 minutes), is
    # no longer held back: it may be notified then (its group's own timer), never before.
    late = about_camera(sink, t0, 'LiquidEdgeTopicLatencyHigh')
    assert all(n.at > cleared for n in late), [n.brief() for n in late]
    print(f'stamp_lag cleared -> {resolved.brief()} after {resolved.at - cleared:.1f} s;'
          f' twin notified afterwards: {[n.brief() for n in late]}')
