"""A real Prometheus server scraping the running nodes with the shipped scrape config and alert rules.

The demo's processes run as in test_metric_names.py (test/demo_stack.py). The shipped
config/prometheus/prometheus.yml and alerts.yml are copied, parsed and rewritten (targets on the
nodes' free ports, 1 s scrape and evaluation intervals, every `for:` 2 s); `prometheus` serves them
on a free loopback port. Through its HTTP API: every target is up, the measured IMU rate is the
simulated one, and two injected faults (a paused topic, a stopped expected node) fire the alerts
that name them and resolve once fixed.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest
import rclpy
import yaml
from conftest import free_port, wait_for
from demo_stack import EXTRA_ROBOT, JOBS, DemoStack
from prom_names import ALERTS_FILE
from ros_helpers import ParameterClient

PROMETHEUS = shutil.which('prometheus')
PROMETHEUS_FILE = ALERTS_FILE.parent / 'prometheus.yml'
NS = '/prom_e2e'
SHORT_FOR = '2s'
IMU_RATE = 200.0       # sim_robot's default imu rate

pytestmark = pytest.mark.skipif(PROMETHEUS is None,
                                reason='prometheus not installed (Debian package prometheus)')


def rewritten_configs(tmp: Path, ports: Dict[str, int]) -> Path:
    """The shipped prometheus.yml and alerts.yml rewritten for a test run; returns the config path."""
    alerts = yaml.safe_load(ALERTS_FILE.read_text())
    for group in alerts['groups']:
        for rule in group['rules']:
            if 'for' in rule:
                rule['for'] = SHORT_FOR
    (tmp / 'alerts.yml').write_text(yaml.safe_dump(alerts, sort_keys=False))

    config = yaml.safe_load(PROMETHEUS_FILE.read_text())
    # No Alertmanager here: the shipped one on localhost:9093 may be someone else's (the alerting
    # tests give theirs: test_alertmanager_e2e.py).
    del config['alerting']
    config['global'].update(scrape_interval='1s', scrape_timeout='1s', evaluation_interval='1s')
    config['rule_files'] = [str(tmp / 'alerts.yml')]
    by_job = {job: node for node, job in JOBS.items()}
    assert {c['job_name'] for c in config['scrape_configs']} == set(by_job), 'jobs of prometheus.yml'
    for scrape_config in config['scrape_configs']:
        port = ports[by_job[scrape_config['job_name']]]
        scrape_config['static_configs'] = [{'targets': [f'127.0.0.1:{port}']}]
    path = tmp / 'prometheus.yml'
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class PrometheusServer:
    """`prometheus` on a free loopback port with its storage in tmp; `api(path)` returns `data`."""

    def __init__(self, config: Path, tmp: Path, *flags: str) -> None:
        self.url = f'http://127.0.0.1:{free_port()}'
        self.log_path = tmp / 'prometheus.log'
        self._log = open(self.log_path, 'wb')
        # Nothing beyond the listed targets: no remote write or read, no Alertmanager configured,
        # and the UI/API bound to loopback only.
        self.proc = subprocess.Popen(
            [PROMETHEUS, f'--config.file={config}', f'--storage.tsdb.path={tmp / "tsdb"}',
             f'--web.listen-address={self.url.split("//")[1]}', '--log.level=warn', *flags],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=tmp)

    def get(self, path: str, **query: str) -> Optional[bytes]:
        url = self.url + path + ('?' + urllib.parse.urlencode(query) if query else '')
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.read()
        except OSError:
            return None

    def api(self, path: str, **query: str) -> Any:
        body = json.loads(self.get(f'/api/v1/{path}', **query))
        assert body['status'] == 'success', body
        return body['data']

    def ready(self) -> bool:
        assert self.proc.poll() is None, f'prometheus exited:\n{self.output()}'
        return self.get('/-/ready') is not None

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors='replace')

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


class ParameterSetter(ParameterClient):
    """Sets another node's parameters at run time, as `ros2 param set` does; a refusal fails."""

    def __init__(self, target: str, name: str = 'prom_e2e_params', context: Any = None) -> None:
        super().__init__(target, name, context)

    def set(self, name: str, value: Any) -> None:  # type: ignore[override]
        result = super().set(name, value)
        assert result.successful, result.reason


@pytest.fixture(scope='module')
def stack(tmp_path_factory) -> Iterator[DemoStack]:
    demo = DemoStack(NS, tmp_path_factory.mktemp('demo_stack')).start()
    try:
        demo.wait_until_measured()
        yield demo
    finally:
        codes = demo.stop()
    assert set(codes.values()) == {0}, f'{codes}, died before stop: {demo.died_early}\n{demo.logs()}'


@pytest.fixture(scope='module')
def prometheus(stack, tmp_path_factory) -> Iterator[PrometheusServer]:
    tmp = tmp_path_factory.mktemp('prometheus')
    server = PrometheusServer(rewritten_configs(tmp, stack.ports), tmp)
    try:
        wait_for(server.ready, 30, 'prometheus /-/ready')
        yield server
    finally:
        server.stop()
        print(f'--- prometheus.log\n{server.output()}')


@pytest.fixture(scope='module')
def sim_params(stack) -> Iterator[ParameterSetter]:
    rclpy.init()
    setter = ParameterSetter(f'{NS}/sim_robot')
    try:
        yield setter
    finally:
        setter.close()
        rclpy.try_shutdown()


def alerts(server: PrometheusServer, **labels: str) -> List[Dict]:
    """The active (pending or firing) alerts whose labels include `labels`."""
    return [a for a in server.api('alerts')['alerts']
            if all(a['labels'].get(k) == v for k, v in labels.items())]


def firing(server: PrometheusServer, **labels: str) -> Optional[Dict]:
    return next((a for a in alerts(server, **labels) if a['state'] == 'firing'), None)


def test_every_target_is_up_and_the_imu_rate_is_the_simulated_one(stack, prometheus):
    def targets_up():
        targets = prometheus.api('targets')['activeTargets']
        return targets if targets and all(t['health'] == 'up' for t in targets) else None

    targets = wait_for(targets_up, 15, 'all targets up')
    assert {(t['labels']['job'], t['scrapeUrl']) for t in targets} == {
        (job, f'http://127.0.0.1:{stack.ports[node]}/metrics') for node, job in JOBS.items()}
    seen: List[Dict] = []

    def imu_rate():
        result = prometheus.api('query', query=f'liquid_edge_topic_rate_hz{{topic="{NS}/imu/data"}}')
        seen[:] = result['result']
        # The first scrapes may catch a window still filling up at start: wait for one within
        # 10 % of the simulated rate.
        return seen if len(seen) == 1 and abs(float(seen[0]['value'][1]) - IMU_RATE) <= \
            0.1 * IMU_RATE else None
    (sample,) = wait_for(imu_rate, 20, f'the imu rate in Prometheus within 10 % of {IMU_RATE}',
                         last=lambda: seen)
    assert sample['metric']['job'] == 'liquid_edge_topic_monitor'


def test_faults_fire_the_alerts_that_name_them_and_resolve_when_fixed(stack, prometheus, sim_params):
    topic, node = f'{NS}/chatter', f'{NS}/{EXTRA_ROBOT}'
    # Healthy first: rules evaluated against scraped data, nothing about either yet.
    wait_for(lambda: prometheus.api('query', query=f'liquid_edge_topic_status{{topic="{topic}"}} == 0')
             ['result'], 15, f'{topic} OK in Prometheus')
    wait_for(lambda: prometheus.api('query', query=f'liquid_edge_node_up{{node="{node}"}} == 1')
             ['result'], 15, f'{node} up in Prometheus')
    # A start-up WARN (the first rate of a reliable topic can be off) may leave a pending alert
    # until the next evaluation.
    wait_for(lambda: alerts(prometheus, topic=topic) == [] and alerts(prometheus, node=node) == [],
             10, f'no alert on {topic} or {node} before the faults')
    print('active alerts before the faults:',
          sorted((a['labels']['alertname'], a['state']) for a in alerts(prometheus)))

    sim_params.set('chatter.paused', True)
    stack.stop_extra_robot()
    stale = wait_for(lambda: firing(prometheus, alertname='LiquidEdgeTopicStale', topic=topic),
                     30, f'LiquidEdgeTopicStale firing for {topic}')
    down = wait_for(lambda: firing(prometheus, alertname='LiquidEdgeExpectedNodeDown', node=node),
                    30, f'LiquidEdgeExpectedNodeDown firing for {node}')
    robot = stale['labels']['robot']
    assert stale['labels']['severity'] == 'critical'
    assert stale['annotations']['summary'] == f'Topic {topic} on {robot} is stale'
    # The annotation's own query ran against the live data: the paused publisher is still there.
    assert '(1 publishers)' in stale['annotations']['description'], stale['annotations']
    assert down['annotations']['summary'] == f'Node {node} is missing on {robot}'

    sim_params.set('chatter.paused', False)
    stack.start_extra_robot()
    wait_for(lambda: alerts(prometheus, topic=topic) == [], 30, f'alerts on {topic} resolved')
    wait_for(lambda: alerts(prometheus, node=node) == [], 30, f'alerts on {node} resolved')
