"""config/alertmanager/ and docs/RUNBOOKS.md: checked by amtool, by their structure, and by the real
Alertmanager fed alerts through its API (no Prometheus, no DDS; a few seconds).

- amtool check-config accepts the shipped file; amtool's route test sends critical to `pager`,
  warning and info to `chat`, the watchdog to `heartbeat`;
- as shipped, every receiver a route can reach is a webhook on 127.0.0.1 (no secret needed, nothing
  leaves the host), the Slack and email receivers are complete and use the templates, and every
  credential comes from a file;
- every alert rule (alerts.yml, fleet.yml) links its own runbook entry, which says what the alert
  means, three first checks and the usual fix, and a dashboard panel that shows what it alerts on;
- the templates, rendered by amtool, say the robot, what is wrong with its value, since when, and
  link the panel and the runbook;
- the real Alertmanager, given a set of alerts at once, holds back exactly the warning twins of
  critical alerts (same robot and topic, path, sensor or node) and the alerts of a robot whose
  monitoring is down, and notifies the rest, one notification per robot and alert.
"""
from __future__ import annotations

import datetime
import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest
import yaml

from alerting import (ALERTMANAGER, AM_FILE, AMTOOL, ROUTED_RECEIVERS, Alertmanager, WebhookSink,
                      local_config, render)
from conftest import REPO, wait_for
from prom_names import (DASHBOARD_FILE, FLEET_DASHBOARD_FILE, FLEET_RULES_FILE,
                        alert_rules, dashboard_exprs, metric_names_in, recording_rules)

RUNBOOKS = REPO / 'docs' / 'RUNBOOKS.md'
needs_amtool = pytest.mark.skipif(AMTOOL is None, reason='amtool not installed (Debian package prometheus-alertmanager)')
needs_alertmanager = pytest.mark.skipif(ALERTMANAGER is None or AMTOOL is None,
                                        reason='Debian package prometheus-alertmanager not installed')


def _config() -> Dict:
    return yaml.safe_load(AM_FILE.read_text())


def _rules() -> List[Dict]:
    return alert_rules() + alert_rules(FLEET_RULES_FILE)


def _routes(route: Dict) -> Iterator[Dict]:
    yield route
    for child in route.get('routes', []):
        yield from _routes(child)


# --- the shipped file ----------------------------------------------------------------------------

@needs_amtool
def test_amtool_checks_the_shipped_config():
    proc = subprocess.run([AMTOOL, 'check-config', str(AM_FILE)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'SUCCESS' in proc.stdout and ' - 1 templates' in proc.stdout, proc.stdout
    assert f' - {len(_config()["inhibit_rules"])} inhibit rules' in proc.stdout


@needs_amtool
@pytest.mark.parametrize('labels, receiver', [
    ({'alertname': 'LiquidEdgeTopicStale', 'severity': 'critical', 'robot': 'r1'}, 'pager'),
    ({'alertname': 'LiquidEdgeRobotSilent', 'severity': 'critical', 'robot': 'r1'}, 'pager'),
    ({'alertname': 'LiquidEdgeTopicDegraded', 'severity': 'warning', 'robot': 'r1'}, 'chat'),
    ({'alertname': 'LiquidEdgeFleetModelVersionsDiffer', 'severity': 'info'}, 'chat'),
    ({'alertname': 'LiquidEdgeWatchdog', 'severity': 'none'}, 'heartbeat'),
    ({'alertname': 'SomethingElse'}, 'chat'),
], ids=lambda v: v if isinstance(v, str) else v['alertname'])
def test_amtool_routes_each_severity_to_its_receiver(labels: Dict[str, str], receiver: str):
    proc = subprocess.run([AMTOOL, 'config', 'routes', 'test', f'--config.file={AM_FILE}',
                           f'--verify.receivers={receiver}',
                           *(f'{k}={v}' for k, v in labels.items())],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == receiver, proc.stdout + proc.stderr


def test_every_severity_the_rules_use_has_a_route():
    severities = {rule['labels']['severity'] for rule in _rules()}
    assert severities == {'none', 'info', 'warning', 'critical'}
    matchers = ' '.join(m for r in _config()['route']['routes'] for m in r.get('matchers', []))
    for severity in severities - {'none'}:
        assert re.search(rf'severity=~?"[^"]*\b{severity}\b', matchers), severity


def test_shipped_routes_reach_only_webhooks_on_this_host_and_credentials_are_files():
    config = _config()
    receivers = {r['name']: r for r in config['receivers']}
    routed = {route['receiver'] for route in _routes(config['route'])}
    assert routed == set(ROUTED_RECEIVERS)
    for name in routed:
        (hook,) = receivers[name]['webhook_configs']
        assert set(receivers[name]) == {'name', 'webhook_configs'}, name
        assert urllib.parse.urlsplit(hook['url']).hostname == '127.0.0.1', hook
        assert hook['send_resolved'] is (name != 'heartbeat'), name
    # The examples a user switches to: complete, templated, secrets from files.
    assert receivers['slack-pager']['slack_configs'][0]['api_url_file'].startswith('/')
    assert receivers['email-pager']['email_configs'][0]['to']
    assert config['global']['smtp_auth_password_file'].startswith('/')
    for name in ('slack-pager', 'slack-chat'):
        (slack,) = receivers[name]['slack_configs']
        for key in ('title', 'text', 'title_link', 'color'):
            assert 'template "liquid_edge.' in slack[key], (name, key)
    (email,) = receivers['email-pager']['email_configs']
    assert 'liquid_edge.title' in email['headers']['Subject'] and 'liquid_edge.email.html' in email['html']
    # No secret inline anywhere (a key with a value, rather than its *_file twin).
    text = AM_FILE.read_text()
    for key in ('api_url', 'slack_api_url', 'smtp_auth_password', 'auth_password', 'password',
                'credentials', 'bearer_token', 'auth_secret', 'routing_key', 'service_key'):
        assert not re.search(rf'^\s*{key}:', text, re.M), f'inline secret key {key}:'


# --- runbooks and dashboard links ------------------------------------------------------------------

def _runbook_entries() -> Dict[str, str]:
    parts = re.split(r'^## (\S+)\s*$', RUNBOOKS.read_text(), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_every_rule_links_its_runbook_entry():
    entries = _runbook_entries()
    names = [rule['alert'] for rule in _rules()]
    assert sorted(entries) == sorted(names), 'one runbook entry per alert rule, no other'
    for rule in _rules():
        # GitHub's anchor for a heading `## LiquidEdgeTopicStale` is #liquidedgetopicstale.
        assert rule['annotations'].get('runbook_url') == f'docs/RUNBOOKS.md#{rule["alert"].lower()}', \
            rule['alert']


@pytest.mark.parametrize('name', [rule['alert'] for rule in _rules()])
def test_each_runbook_entry_says_what_it_means_three_first_checks_and_the_fix(name: str):
    entry = _runbook_entries()[name]
    means, rest = entry.split('**First checks:**')
    checks, fix = rest.split('**Usual fix:**')
    assert '**Means:**' in means and len(means.split()) > 15, name
    items = re.findall(r'^(\d)\. (.*(?:\n   .*)*)', checks, re.M)
    assert [n for n, _ in items] == ['1', '2', '3'], f'{name}: three numbered first checks'
    for _, item in items:
        assert '`' in item, f'{name}: each check names a command or a metric: {item!r}'
    assert len(fix.split()) > 5, name
    rule = next(r for r in _rules() if r['alert'] == name)
    metrics = {n for n in metric_names_in(rule['expr']) if n.startswith('liquid_edge_')}
    if metrics:
        # The metric the rule reads, or its family, is among what the entry tells to look at.
        assert any(m in entry or m.rsplit('_', 1)[0] in entry for m in metrics), (name, metrics)
    if any(f'$labels.{label}' in rule['annotations']['summary'] for label in ('topic', 'node')):
        assert 'ros2 ' in checks, f'{name}: a ros2 command among the first checks'


#: Panels that show what an alert is about without reading its metric.
PANEL_BY_DESIGN = {
    'LiquidEdgeWatchdog': 'the firing alerts (ALERTS): the watchdog among them',
    'LiquidEdgeMonitorDown': 'topic status: every topic of a dead monitor reads STALE there',
}


@pytest.mark.parametrize('name', [rule['alert'] for rule in _rules()])
def test_each_rule_links_a_dashboard_panel_that_shows_what_it_alerts_on(name: str):
    rule = next(r for r in _rules() if r['alert'] == name)
    url = urllib.parse.urlsplit(rule['annotations']['dashboard_url'])
    assert not url.scheme and url.path.startswith('d/'), 'relative to the Grafana address'
    uid = url.path.split('/')[1]
    dashboards = {json.loads(p.read_text())['uid']: p for p in (DASHBOARD_FILE, FLEET_DASHBOARD_FILE)}
    assert uid in dashboards, f'{name}: no dashboard with uid {uid}'
    doc = json.loads(dashboards[uid].read_text())
    query = urllib.parse.parse_qs(url.query)
    panel_id = int(query['viewPanel'][0])
    panels = {p['id']: p for row in doc['panels'] for p in [row] + row.get('panels', [])}
    assert panel_id in panels and panels[panel_id]['type'] != 'row', f'{name}: panel {panel_id}'
    variables = {v['name'] for v in doc['templating']['list']}
    assert {k[4:] for k in query if k.startswith('var-')} <= variables
    if 'robot' in variables and name != 'LiquidEdgeFleetModelVersionsDiffer' and name != 'LiquidEdgeWatchdog':
        assert 'var-robot' in query, f'{name}: the panel filtered to the alert\'s robot'
    if '$labels.topic' in rule['annotations']['summary'] + rule['annotations']['description']:
        assert 'var-topic' in query, f'{name}: the panel filtered to the alert\'s topic'
    # The panel queries what the rule reads (recorded series count as what they record).
    recorded = {r['record']: metric_names_in(r['expr']) for r in recording_rules()}
    shown: Set[str] = set()
    for where, expr in dashboard_exprs(dashboards[uid]):
        if where.startswith(f'panel {panel_id} '):
            for metric in metric_names_in(expr):
                shown |= {metric} | recorded.get(metric, set())
    read = metric_names_in(rule['expr'])
    assert shown & read or name in PANEL_BY_DESIGN, f'{name}: panel {panel_id} shows {shown}, rule reads {read}'


# --- templates -------------------------------------------------------------------------------------

def _body(status: str = 'firing', alerts: int = 1) -> Dict:
    """A webhook body as Alertmanager sends it: `alerts` stale-topic alerts of robot r7."""
    items = []
    for i in range(alerts):
        topic = f'/r7/camera{i}/image_raw'
        items.append({
            'status': status,
            'labels': {'alertname': 'LiquidEdgeTopicStale', 'robot': 'r7', 'topic': topic,
                       'severity': 'critical', 'job': 'liquid_edge_topic_monitor'},
            'annotations': {
                'summary': f'Topic {topic} on r7 is stale',
                'description': f'No message on {topic} on r7 within its timeout, or no publisher at all (1 publishers) <b>.',
                'runbook_url': 'docs/RUNBOOKS.md#liquidedgetopicstale',
                'dashboard_url': f'd/liquid-edge-ros?viewPanel=5&var-robot=r7&var-topic={urllib.parse.quote_plus(topic, safe="")}'},
            'startsAt': '2026-12-05T10:31:02.5+01:00',
            'endsAt': '2026-12-05T10:41:00Z' if status == 'resolved' else '0001-01-01T00:00:00Z',
            'generatorURL': 'http://prometheus/graph', 'fingerprint': f'f{i}'})
    common = dict(items[0]['labels'])
    if alerts > 1:
        del common['topic']
    return {'receiver': 'pager', 'status': status, 'alerts': items,
            'groupLabels': {'alertname': 'LiquidEdgeTopicStale', 'robot': 'r7'},
            'commonLabels': common,
            'commonAnnotations': ({k: v for k, v in items[0]['annotations'].items()} if alerts == 1
                                  else {'runbook_url': 'docs/RUNBOOKS.md#liquidedgetopicstale'}),
            'externalURL': 'http://alertmanager', 'version': '4', 'groupKey': 'k', 'truncatedAlerts': 0}


@needs_amtool
def test_templates_say_the_robot_what_is_wrong_since_when_and_link_panel_and_runbook(tmp_path: Path):
    body = _body()
    text = render('liquid_edge.text', body, tmp_path)
    lines = text.splitlines()
    assert lines[0] == '[FIRING:1] r7: Topic /r7/camera0/image_raw on r7 is stale'
    assert 'FIRING LiquidEdgeTopicStale (critical): Topic /r7/camera0/image_raw on r7 is stale' in lines
    assert body['alerts'][0]['annotations']['description'] in lines      # the value, in words
    assert 'robot r7, topic /r7/camera0/image_raw; since 2026-12-05 09:31:02 UTC' in lines
    assert ('Dashboard: http://localhost:3000/d/liquid-edge-ros?viewPanel=5&var-robot=r7'
            '&var-topic=%2Fr7%2Fcamera0%2Fimage_raw') in lines
    assert ('Runbook: https://github.com/CHANGE-ME/liquid_edge_ros_monitor/blob/main/docs/RUNBOOKS.md'
            '#liquidedgetopicstale') in lines
    slack = render('liquid_edge.slack.text', body, tmp_path)
    assert slack.startswith('*CRITICAL: Topic /r7/camera0/image_raw on r7 is stale*\n')
    assert '<http://localhost:3000/d/liquid-edge-ros?viewPanel=5&' in slack and '|Dashboard>' in slack
    assert render('liquid_edge.slack.color', body, tmp_path) == 'danger'
    assert render('liquid_edge.slack.title_link', body, tmp_path).startswith('http://localhost:3000/d/')
    html = render('liquid_edge.email.html', body, tmp_path, html=True)
    assert '<title>[FIRING:1] r7: Topic /r7/camera0/image_raw on r7 is stale</title>' in html
    assert '(1 publishers) &lt;b&gt;.' in html, 'values are escaped in HTML'
    # An absolute URL in an annotation is used as it is.
    body['alerts'][0]['annotations']['runbook_url'] = 'https://wiki.example.org/camera'
    assert 'Runbook: https://wiki.example.org/camera' in render('liquid_edge.text', body, tmp_path)


@needs_amtool
def test_templates_of_a_group_and_of_a_resolution(tmp_path: Path):
    group = render('liquid_edge.text', _body(alerts=3), tmp_path)
    assert group.splitlines()[0] == '[FIRING:3] r7: LiquidEdgeTopicStale (3 alerts)'
    assert [f'/r7/camera{i}/image_raw' in group for i in range(3)] == [True] * 3
    resolved = _body(status='resolved')
    text = render('liquid_edge.text', resolved, tmp_path)
    assert text.splitlines()[0] == '[RESOLVED] r7: Topic /r7/camera0/image_raw on r7 is stale'
    assert 'since 2026-12-05 09:31:02 UTC, resolved 2026-12-05 10:41:00 UTC' in text
    assert render('liquid_edge.slack.color', resolved, tmp_path) == 'good'


# --- the real Alertmanager: inhibitions, grouping, routing ----------------------------------------

def _alert(name: str, severity: str, robot: str = '', **labels: str) -> Dict:
    now = datetime.datetime.now(datetime.timezone.utc)
    lset = {'alertname': name, 'severity': severity, **labels}
    if robot:
        lset['robot'] = robot
    return {'labels': lset, 'annotations': {'summary': f'{name} {robot} {labels}'},
            'startsAt': now.isoformat(), 'endsAt': (now + datetime.timedelta(minutes=10)).isoformat()}


#: (alert, inhibited?): sources first in each block, then what they must and must not hold back.
MATRIX: List[Tuple[Dict, bool]] = [
    # Twins on r1: the same topic, path, sensor or node.
    (_alert('LiquidEdgeTopicError', 'critical', 'r1', topic='/cam'), False),
    (_alert('LiquidEdgeTopicLatencyHigh', 'warning', 'r1', topic='/cam'), True),
    (_alert('LiquidEdgeTopicLatencyHigh', 'warning', 'r1', topic='/imu'), False),      # other topic
    (_alert('LiquidEdgeHostDiskCritical', 'critical', 'r1', path='/data'), False),
    (_alert('LiquidEdgeHostDiskLow', 'warning', 'r1', path='/data'), True),
    (_alert('LiquidEdgeHostDiskLow', 'warning', 'r1', path='/'), False),               # other path
    (_alert('LiquidEdgeHostTemperatureCritical', 'critical', 'r1', sensor='cpu/temp1'), False),
    (_alert('LiquidEdgeHostTemperatureHigh', 'warning', 'r1', sensor='cpu/temp1'), True),
    (_alert('LiquidEdgeModelAccuracyLow', 'critical', 'r1', node='/inference'), False),
    (_alert('LiquidEdgeInferenceLatencyHigh', 'warning', 'r1', node='/inference'), True),
    # A warning with no topic, path, sensor or node is nobody's twin (a label missing on both sides
    # must not count as equal).
    (_alert('LiquidEdgeHostCpuHigh', 'warning', 'r1', cpu='total'), False),
    # Another robot's warning about the same topic.
    (_alert('LiquidEdgeTopicLatencyHigh', 'warning', 'r4', topic='/cam'), False),
    # r2's monitoring is down: its other alerts are held back, not the watchdog, not other robots.
    (_alert('LiquidEdgeTargetDown', 'critical', 'r2', job='liquid_edge_inference'), False),
    (_alert('LiquidEdgeMonitorDown', 'critical', 'r2', node='/topic_monitor'), False),
    (_alert('LiquidEdgeTopicStale', 'critical', 'r2', topic='/cam'), True),
    (_alert('LiquidEdgeHostCpuHigh', 'warning', 'r2', cpu='total'), True),
    (_alert('LiquidEdgeWatchdog', 'none', 'r2'), False),
    # A target down that names no robot (a robot Prometheus without external_labels) holds back
    # nothing, not even robot-less alerts.
    (_alert('LiquidEdgeTargetDown', 'critical', job='liquid_edge_node_monitor'), False),
    (_alert('LiquidEdgeNoTopicsMonitored', 'warning', job='liquid_edge_topic_monitor'), False),
]


def _key(labels: Dict[str, str]) -> Tuple:
    return tuple(sorted((k, v) for k, v in labels.items()))


@needs_alertmanager
def test_the_real_alertmanager_holds_back_twins_and_a_down_robots_alerts_and_notifies_the_rest(tmp_path: Path):
    sink = WebhookSink(lifetime_s=120)
    am = Alertmanager(local_config(tmp_path, sink), tmp_path)
    try:
        wait_for(am.ready, 30, 'alertmanager /-/ready')
        posted = time.time()
        request = urllib.request.Request(f'{am.url}/api/v2/alerts', method='POST',
                                         data=json.dumps([a for a, _ in MATRIX]).encode(),
                                         headers={'Content-Type': 'application/json'})
        with urllib.request.urlopen(request, timeout=5) as r:
            assert r.status == 200
        held = {_key(a['labels']) for a, inhibited in MATRIX if inhibited}

        def inhibited() -> Set[Tuple]:
            return {_key(a['labels']) for a in am.alerts() if a['status']['inhibitedBy']}
        wait_for(lambda: len(am.alerts()) == len(MATRIX) and inhibited() == held, 10,
                 'the inhibitions in Alertmanager', last=lambda: inhibited() ^ held)
        # Every group with an alert not held back is notified once, on its severity's receiver,
        # holding only those alerts; a group whose alerts are all held back is not notified.
        receiver = {'critical': 'pager', 'warning': 'chat', 'none': 'heartbeat'}
        want: Dict[Tuple, Tuple[str, Set[Tuple]]] = {}
        for alert, inhibited_ in MATRIX:
            if not inhibited_:
                labels = alert['labels']
                group = (labels.get('robot', ''), labels['alertname'])
                want.setdefault(group, (receiver[labels['severity']], set()))[1].add(_key(labels))

        def got() -> Dict[Tuple, Tuple[str, Set[Tuple]]]:
            out: Dict[Tuple, Tuple[str, Set[Tuple]]] = {}
            for n in sink.notifications():
                group = (n.group_labels.get('robot', ''), n.group_labels['alertname'])
                out.setdefault(group, (n.receiver, set()))[1].update(_key(a['labels']) for a in n.alerts)
            return out
        wait_for(lambda: set(got()) == set(want), 15, 'one notification per group',
                 last=lambda: sorted(set(got()) ^ set(want)))
        # Watch a further group interval (2 s) and more: nothing held back goes out later.
        wait_for(lambda: time.time() - posted > 5, 10, 'an observation window', interval=0.5)
        assert got() == want
        firing = [n for n in sink.notifications() if n.receiver != 'heartbeat']
        assert len(firing) == len(want) - 1, [n.brief() for n in firing]
        assert all(n.path == f'/{n.receiver}' for n in sink.notifications())
        assert not [a for n in sink.notifications() for a in n.alerts if _key(a['labels']) in held]
        print('notifications:', *(n.brief() for n in sink.notifications()), sep='\n  ')
    finally:
        am.stop()
        sink.close()
