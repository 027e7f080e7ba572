"""Alert rules, scrape configuration and Grafana dashboard: checked by promtool and by their structure (no DDS).

promtool (Debian package `prometheus`, installed by the project's bootstrap) validates the rule file,
runs its unit tests and checks the scrape configuration; every dashboard query is validated by
promtool too, written as recording rules. The tests that need promtool skip only where it is absent.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Dict, List

import pytest
import yaml

from conftest import free_port, wait_for
from prom_names import (ALERTS_FILE, DASHBOARD_FILE, FLEET_DASHBOARD_FILE, FLEET_RULES_FILE, REPO,
                        alert_rules, dashboard_exprs, metric_names_in, metric_names_used,
                        recorded_names, recording_rules)

PROM_DIR = REPO / 'config' / 'prometheus'
ALERTS_TEST_FILE = PROM_DIR / 'alerts_test.yml'
PROMETHEUS_FILE = PROM_DIR / 'prometheus.yml'
TARGETS_EXAMPLE = PROM_DIR / 'targets.example.yml'
METRICS_DOC = REPO / 'docs' / 'METRICS.md'
PROMTOOL = shutil.which('promtool')
PROMETHEUS = shutil.which('prometheus')
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason='promtool not installed (Debian package prometheus)')

# Grafana's variables, replaced by values of the kind Grafana puts there before it sends a query.
GRAFANA_VARIABLES = {'$__rate_interval': '1m', '$__interval': '15s', '$__range': '1h',
                     '$robot': '.*', '$topic': '.*'}


def _promtool(*args: str, cwd: Path = REPO) -> str:
    """Run promtool; fail with its output when it does not exit 0."""
    proc = subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f'promtool {" ".join(args)} failed:\n{proc.stdout}{proc.stderr}'
    return proc.stdout + proc.stderr


def _dashboard() -> Dict:
    return json.loads(DASHBOARD_FILE.read_text())


def _panels(dashboard: Dict) -> List[Dict]:
    panels = list(dashboard['panels'])
    for row in dashboard['panels']:
        panels.extend(row.get('panels', []))
    return panels


def _fleet_scrape_configs() -> List[Dict]:
    """The commented fleet variant at the end of prometheus.yml, uncommented and parsed."""
    text = PROMETHEUS_FILE.read_text()
    match = re.search(r'# --- fleet variant \(begin\).*?\n(.*?)# --- fleet variant \(end\)', text, re.S)
    assert match, 'prometheus.yml: fleet variant markers not found'
    lines = [line[2:] if line.startswith('# ') else line.lstrip('#') for line in match.group(1).splitlines()]
    start = next(i for i, line in enumerate(lines) if line.startswith('scrape_configs:'))
    return yaml.safe_load('\n'.join(lines[start:]))['scrape_configs']


# --- the helper other tests rely on ------------------------------------------------------------

def test_metric_names_in_keeps_metrics_and_drops_functions_keywords_labels_and_numbers():
    expr = ('histogram_quantile(0.95, sum by (robot, le) (rate(a_seconds_bucket{stage="x", le!="0.1"}[5m])))'
            ' > 500e6 and on (job) b_total offset 5m unless ignoring(topic) c:rec:ratio'
            ' or count_values("version", d_info) or max(e_bytes) without (instance) or 1e-3')
    assert metric_names_in(expr) == {'a_seconds', 'b_total', 'c:rec:ratio', 'd_info', 'e_bytes'}


def test_metric_names_used_finds_metrics_of_alerts_and_dashboard_and_nothing_else():
    names = metric_names_used()
    assert {'liquid_edge_topic_status', 'liquid_edge_inference_latency_seconds',  # alerts, histogram base
            'liquid_edge_topic_publishers',                                          # an annotation query
            'liquid_edge_topic_bytes_total', 'liquid_edge_inference_hidden_state_norm',  # dashboard only
            'process_resident_memory_bytes'} <= names
    assert not names & {'rate', 'histogram_quantile', 'sum', 'increase', 'by', 'le', 'robot', 'topic',
                        'up', 'ALERTS', 'liquid_edge_inference_latency_seconds_bucket'}
    assert all(re.fullmatch(r'[a-z_][a-z0-9_]*', name) for name in names), sorted(names)


def test_every_liquid_edge_metric_used_is_in_the_metrics_contract():
    documented = set(re.findall(r'`(liquid_edge_[a-z0-9_]+)', METRICS_DOC.read_text()))
    used = {name for name in metric_names_used() if name.startswith('liquid_edge_')}
    assert used - documented == set(), f'not in docs/METRICS.md: {sorted(used - documented)}'


# --- alert rules -------------------------------------------------------------------------------

#: The dead man's switch: always firing (expr vector(1)), severity none, routed by its name.
WATCHDOG = 'LiquidEdgeWatchdog'


def test_every_alert_rule_has_severity_summary_description_runbook_dashboard_and_a_for_line():
    rules = alert_rules()
    assert len(rules) >= 20
    names = [rule['alert'] for rule in rules]
    assert len(names) == len(set(names)), 'duplicate alert names'
    for rule in rules:
        severities = ('none',) if rule['alert'] == WATCHDOG else ('warning', 'critical')
        assert rule.get('labels', {}).get('severity') in severities, rule['alert']
        annotations = rule.get('annotations', {})
        for key in ('summary', 'description', 'runbook_url', 'dashboard_url'):
            assert annotations.get(key, '').strip(), f'{rule["alert"]}: no {key}'
        assert 'for' in rule, f'{rule["alert"]}: no for:'
    # One `for:` per rule on a line of its own: the end-to-end test rewrites them to short durations.
    for_lines = re.findall(r'^\s+for: \d+[smh]\s*$', ALERTS_FILE.read_text(), re.M)
    assert len(for_lines) == len(rules)


def test_seed_thresholds_are_in_base_units():
    exprs = {rule['alert']: ' '.join(rule['expr'].split()) for rule in alert_rules()}
    assert 'stage="callback"' in exprs['LiquidEdgeInferenceLatencyHigh']
    assert exprs['LiquidEdgeInferenceLatencyHigh'].endswith('> 0.1')
    assert exprs['LiquidEdgeModelAccuracyLow'] == 'liquid_edge_model_accuracy < 0.85'
    assert exprs['LiquidEdgeProcessMemoryHigh'].endswith('> 500e6')
    assert exprs['LiquidEdgeInferencePowerHigh'] == 'liquid_edge_inference_power_watts{source="estimate"} > 1'


def test_every_alert_rule_is_unit_tested_firing_and_not_firing():
    tests = yaml.safe_load(ALERTS_TEST_FILE.read_text())
    assert tests['rule_files'] == ['alerts.yml']
    fires, silent = set(), set()
    for case in tests['tests']:
        for check in case.get('alert_rule_test', []):
            (fires if check.get('exp_alerts') else silent).add(check['alertname'])
            for alert in check.get('exp_alerts') or []:
                assert {'summary', 'description'} <= set(alert.get('exp_annotations', {})), check['alertname']
                assert 'severity' in alert.get('exp_labels', {}), check['alertname']
    names = {rule['alert'] for rule in alert_rules()}
    assert names - fires == set(), f'never shown firing in alerts_test.yml: {sorted(names - fires)}'
    # The watchdog is never silent: that is its point (alerts_test.yml shows it firing at any time).
    assert names - silent == {WATCHDOG}, f'never shown silent in alerts_test.yml: {sorted(names - silent)}'
    assert WATCHDOG not in silent
    assert fires | silent <= names, f'tests for unknown alerts: {sorted((fires | silent) - names)}'


@needs_promtool
def test_promtool_checks_the_rules():
    out = _promtool('check', 'rules', str(ALERTS_FILE))
    assert f'SUCCESS: {len(alert_rules())} rules found' in out


@needs_promtool
def test_promtool_unit_tests_of_the_rules_pass():
    assert 'SUCCESS' in _promtool('test', 'rules', str(ALERTS_TEST_FILE))


# --- scrape configuration ----------------------------------------------------------------------

@needs_promtool
def test_promtool_checks_the_scrape_config():
    out = _promtool('check', 'config', PROMETHEUS_FILE.name, cwd=PROM_DIR)
    assert 'SUCCESS: 1 rule files found' in out


def test_scrape_config_covers_the_three_exporters_and_the_jobs_the_rules_name():
    config = yaml.safe_load(PROMETHEUS_FILE.read_text())
    assert config['rule_files'] == ['alerts.yml']
    # Alerts go to the Alertmanager beside it (config/alertmanager/), as they do on the central server.
    for path in (PROMETHEUS_FILE, CENTRAL_FILE):
        (am,) = yaml.safe_load(path.read_text())['alerting']['alertmanagers']
        assert am['static_configs'] == [{'targets': ['localhost:9093']}], path.name
    targets = {job['job_name']: [t for sc in job['static_configs'] for t in sc['targets']]
               for job in config['scrape_configs']}
    assert sorted(t for ts in targets.values() for t in ts) == ['localhost:9108', 'localhost:9109', 'localhost:9110']
    for rule in alert_rules():
        for op, value in re.findall(r'job\s*(=~|=)\s*"([^"]*)"', rule['expr']):
            matched = [job for job in targets if (re.fullmatch(value, job) if op == '=~' else job == value)]
            assert matched, f'{rule["alert"]}: job{op}"{value}" matches no job of prometheus.yml'


def test_targets_example_is_a_file_sd_list_of_robots_without_ports():
    entries = yaml.safe_load(TARGETS_EXAMPLE.read_text())
    assert isinstance(entries, list) and entries
    for entry in entries:
        assert entry['labels']['robot']
        assert entry['targets'] and all(':' not in target for target in entry['targets'])


@needs_promtool
@pytest.mark.skipif(PROMETHEUS is None, reason='prometheus not installed')
def test_fleet_variant_is_valid_and_labels_each_robots_targets(tmp_path: Path):
    """The commented fleet variant, uncommented: promtool accepts it, and a real Prometheus turns a
    targets file into one target per robot and job, on the job's port, with the robot label."""
    config = yaml.safe_load(PROMETHEUS_FILE.read_text())
    config['scrape_configs'] = _fleet_scrape_configs()
    del config['alerting']      # it sends to no Alertmanager (the watchdog always fires)
    assert all(job['honor_labels'] for job in config['scrape_configs'])
    config['global']['scrape_interval'] = config['global']['scrape_timeout'] = '1h'  # nothing to scrape here
    (tmp_path / 'prometheus.yml').write_text(yaml.safe_dump(config))
    shutil.copy(ALERTS_FILE, tmp_path / 'alerts.yml')
    (tmp_path / 'targets').mkdir()
    # Loopback addresses nothing listens on, one with a port the relabelling must replace.
    (tmp_path / 'targets' / 'fleet.yml').write_text(yaml.safe_dump([
        {'targets': ['127.0.0.2'], 'labels': {'robot': 'r2'}},
        {'targets': ['127.0.0.3:5555'], 'labels': {'robot': 'r3'}}]))
    _promtool('check', 'config', 'prometheus.yml', cwd=tmp_path)

    port = free_port()
    log = open(tmp_path / 'prometheus.log', 'wb')
    proc = subprocess.Popen([PROMETHEUS, '--config.file=prometheus.yml', f'--storage.tsdb.path={tmp_path / "data"}',
                             f'--web.listen-address=127.0.0.1:{port}'], cwd=tmp_path, stdout=log, stderr=log)

    def targets():
        try:
            with urllib.request.urlopen(f'http://127.0.0.1:{port}/api/v1/targets', timeout=2) as resp:
                active = json.load(resp)['data']['activeTargets']
        except OSError:
            return None
        return active if len(active) == 6 else None

    try:
        active = wait_for(targets, 30.0, 'Prometheus to discover the fleet targets')
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    got = sorted((t['labels']['robot'], t['labels']['job'], t['scrapeUrl']) for t in active)
    ports = {'liquid_edge_topic_monitor': 9108, 'liquid_edge_node_monitor': 9109, 'liquid_edge_inference': 9110}
    assert got == sorted((robot, job, f'http://{host}:{port}/metrics')
                         for robot, host in (('r2', '127.0.0.2'), ('r3', '127.0.0.3')) for job, port in ports.items())


# --- Grafana dashboard -------------------------------------------------------------------------

def test_dashboard_declares_the_prometheus_input_and_the_robot_and_topic_variables():
    dashboard = _dashboard()
    assert dashboard['schemaVersion'] >= 36 and dashboard['uid'] and dashboard['title']
    assert [(i['name'], i['type'], i['pluginId']) for i in dashboard['__inputs']] == \
        [('DS_PROMETHEUS', 'datasource', 'prometheus')]
    variables = {v['name']: v for v in dashboard['templating']['list']}
    assert set(variables) == {'robot', 'topic'}
    for variable in variables.values():
        assert variable['type'] == 'query'
        assert variable['datasource'] == {'type': 'prometheus', 'uid': '${DS_PROMETHEUS}'}
        assert variable['query']['query'].startswith('label_values(')
        assert variable['includeAll'] and variable['allValue'] == '.*'


@pytest.mark.parametrize('path', [DASHBOARD_FILE, FLEET_DASHBOARD_FILE], ids=lambda p: p.stem)
def test_every_dashboard_panel_has_an_id_a_place_and_the_input_datasource(path: Path):
    dashboard = json.loads(path.read_text())
    panels = _panels(dashboard)
    ids = [panel['id'] for panel in panels]
    assert len(ids) == len(set(ids)), 'duplicate panel ids'
    cells = {}
    for panel in panels:
        pos = panel['gridPos']
        assert all(isinstance(pos[k], int) for k in ('h', 'w', 'x', 'y')), panel['title']
        assert pos['x'] + pos['w'] <= 24, panel['title']
        for x in range(pos['x'], pos['x'] + pos['w']):
            for y in range(pos['y'], pos['y'] + pos['h']):
                assert (x, y) not in cells, f'panels "{cells.get((x, y))}" and "{panel["title"]}" overlap'
                cells[(x, y)] = panel['title']
        if panel['type'] == 'row':
            continue
        assert panel['type'] in ('timeseries', 'stat', 'state-timeline'), panel['title']
        required = {r['id'] for r in dashboard['__requires'] if r['type'] == 'panel'}
        assert panel['type'] in required, f"{panel['title']}: __requires lacks {panel['type']}"
        assert panel['datasource'] == {'type': 'prometheus', 'uid': '${DS_PROMETHEUS}'}, panel['title']
        assert panel['targets'], panel['title']
        ref_ids = [target['refId'] for target in panel['targets']]
        assert len(ref_ids) == len(set(ref_ids)), panel['title']
        for target in panel['targets']:
            assert target['datasource'] == panel['datasource'] and target['expr'].strip(), panel['title']


def test_dashboard_shows_what_the_issue_asks_for():
    exprs = ' '.join(expr for _where, expr in dashboard_exprs())
    for needle in ('liquid_edge_topic_rate_hz', 'histogram_quantile(0.5, ', 'histogram_quantile(0.95, ',
                   'histogram_quantile(0.99, ', 'liquid_edge_topic_dropped_messages_total', 'liquid_edge_node_up',
                   'liquid_edge_qos_incompatibilities', 'liquid_edge_host_cpu_usage_ratio',
                   'liquid_edge_host_memory_usage_ratio', 'liquid_edge_host_disk_free_ratio',
                   'liquid_edge_host_temperature_celsius', 'liquid_edge_inference_latency_seconds_bucket',
                   'liquid_edge_inference_deadline_misses_total', 'liquid_edge_inference_input_drift',
                   'liquid_edge_model_accuracy', 'liquid_edge_inference_energy_joules_total',
                   'liquid_edge_inference_power_watts'):
        assert needle in exprs, needle


@needs_promtool
@pytest.mark.parametrize('path, at_least', [(DASHBOARD_FILE, 30), (FLEET_DASHBOARD_FILE, 10)],
                         ids=lambda p: getattr(p, 'stem', str(p)))
def test_every_dashboard_query_is_valid_promql(tmp_path: Path, path: Path, at_least: int):
    """Each query, with Grafana's variables filled in, becomes a recording rule in a group named
    after its panel: promtool's parser then names the panel of any query it rejects."""
    groups = []
    for i, (where, expr) in enumerate(dashboard_exprs(path)):
        for variable, value in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
            expr = expr.replace('${' + variable[1:] + '}', value).replace(variable, value)
        assert '$' not in expr, f'{where}: unknown Grafana variable in {expr!r}'
        groups.append({'name': f'{i} {where}', 'rules': [{'record': f'dashboard:query_{i}', 'expr': expr}]})
    assert len(groups) > at_least
    rules = tmp_path / 'dashboard_rules.yml'
    rules.write_text(yaml.safe_dump({'groups': groups}))
    assert f'SUCCESS: {len(groups)} rules found' in _promtool('check', 'rules', str(rules))


# --- fleet: robot agents, central server, fleet rules and dashboard ------------------------------

AGENT_FILE = PROM_DIR / 'robot-agent.yml'
CENTRAL_FILE = PROM_DIR / 'central.yml'
FLEET_TEST_FILE = PROM_DIR / 'fleet_test.yml'


def _hours(duration: str) -> float:
    units = {'ms': 1 / 3.6e6, 's': 1 / 3600, 'm': 1 / 60, 'h': 1, 'd': 24, 'w': 168, 'y': 8760}
    return sum(float(n) * units[u] for n, u in re.findall(r'(\d+)(ms|s|m|h|d|w|y)', duration))


@needs_promtool
def test_promtool_checks_the_agent_and_central_configs_and_the_fleet_rules():
    assert 'SUCCESS' in _promtool('check', 'config', AGENT_FILE.name, cwd=PROM_DIR)
    assert 'SUCCESS: 2 rule files found' in _promtool('check', 'config', CENTRAL_FILE.name, cwd=PROM_DIR)
    n = len(recording_rules()) + len(alert_rules(FLEET_RULES_FILE))
    assert f'SUCCESS: {n} rules found' in _promtool('check', 'rules', str(FLEET_RULES_FILE))
    assert 'SUCCESS' in _promtool('test', 'rules', str(FLEET_TEST_FILE))


def test_every_fleet_rule_is_unit_tested():
    tests = yaml.safe_load(FLEET_TEST_FILE.read_text())
    assert tests['rule_files'] == ['fleet.yml']
    exprs = {t['expr'] for case in tests['tests'] for t in case.get('promql_expr_test', [])}
    assert recorded_names() <= exprs, f'not unit-tested: {sorted(recorded_names() - exprs)}'
    fires, silent = set(), set()
    for case in tests['tests']:
        for check in case.get('alert_rule_test', []):
            (fires if check.get('exp_alerts') else silent).add(check['alertname'])
    names = {rule['alert'] for rule in alert_rules(FLEET_RULES_FILE)}
    assert names and names <= fires and names <= silent
    for rule in alert_rules(FLEET_RULES_FILE):
        assert rule['labels']['severity'] in ('info', 'critical') and rule['annotations']['summary'], rule['alert']
        assert rule['annotations']['runbook_url'] and rule['annotations']['dashboard_url'], rule['alert']


def test_the_agent_and_the_center_keep_a_day_offline():
    from liquid_edge_ros_monitor.agent import DEFAULT_RETENTION
    central = yaml.safe_load(CENTRAL_FILE.read_text())
    window = _hours(central['storage']['tsdb']['out_of_order_time_window'])
    assert window >= 24 and _hours(DEFAULT_RETENTION) >= 24
    assert central['rule_files'] == ['alerts.yml', 'fleet.yml']
    agent = yaml.safe_load(AGENT_FILE.read_text())
    assert 'robot' in agent['global']['external_labels']
    (remote,) = agent['remote_write']
    assert remote['url'].startswith('https://')
    assert set(remote['tls_config']) == {'ca_file'} and set(remote['basic_auth']) == {'username', 'password_file'}
    scrape = yaml.safe_load(PROMETHEUS_FILE.read_text())['scrape_configs']
    assert agent['scrape_configs'] == scrape, 'robot-agent.yml scrapes what prometheus.yml scrapes'
    assert 'rule_files' not in agent, 'an agent evaluates no rules'


def test_fleet_dashboard_has_the_robot_variable_and_reads_only_rules_fleet_yml_defines():
    dashboard = json.loads(FLEET_DASHBOARD_FILE.read_text())
    assert dashboard['uid'] != _dashboard()['uid']
    assert [v['name'] for v in dashboard['templating']['list']] == ['robot']
    exprs = [expr for _where, expr in dashboard_exprs(FLEET_DASHBOARD_FILE)]
    used_records = {n for e in exprs for n in metric_names_in(e) if ':' in n}
    assert used_records == recorded_names(), 'each fleet.yml recording rule, and no other, is shown'
    assert any('liquid_edge_model_info' in e for e in exprs)
    assert any('liquid_edge_inference_spans_dropped_total' in e for e in exprs)
