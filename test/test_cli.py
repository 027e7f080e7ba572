"""The `liquid-edge-monitor` command: argument and params-file errors, `run`, and the demo."""
from __future__ import annotations

import os
import shutil
import signal
import re
import subprocess
import sys
import urllib.request

import psutil
import pytest
import yaml

from conftest import REPO, free_port, free_ports, own_lines, wait_for
from ros_helpers import sample_value, scrape

CLI = [sys.executable, '-m', 'liquid_edge_ros_monitor.cli']


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)


@pytest.mark.parametrize('content, problem', [
    (None, 'params file not found'),
    ('a: [1, 2\n', 'not valid YAML at line'),
    ('topic_monitor:\n  window: 2.0\n', "no '<node name>: ros__parameters:' section"),
    ('- 1\n- 2\n', "no '<node name>: ros__parameters:' section"),
])
def test_run_rejects_bad_params_files_in_one_line(tmp_path, content, problem):
    path = tmp_path / 'params.yaml'
    if content is not None:
        path.write_text(content)
    p = run_cli('run', '--params-file', str(path))
    assert p.returncode == 2
    lines = own_lines(p.stderr)
    assert len(lines) == 1 and str(path) in lines[0] and problem in lines[0], p.stderr


def test_run_reports_an_invalid_parameter_in_one_line(tmp_path):
    path = tmp_path / 'params.yaml'
    path.write_text(yaml.safe_dump({'/**/topic_monitor': {'ros__parameters': {'window': -1.0}}}))
    p = run_cli('run', '--params-file', str(path))
    assert p.returncode == 2
    assert own_lines(p.stderr) == ["liquid-edge-monitor: error: topic_monitor: parameter 'window': "
                                   'must be > 0, got -1.0']


def test_bad_arguments_are_usage_errors():
    assert run_cli('run', '--params-file', 'x.yaml', '--duration', '-1').returncode == 2
    assert run_cli('frobnicate').returncode == 2


def test_run_hosts_the_monitor_for_a_duration_and_prints_the_table(tmp_path):
    port = free_port()
    path = tmp_path / 'params.yaml'
    path.write_text(yaml.safe_dump({'/**/topic_monitor': {'ros__parameters': {
        'metrics_port': port, 'topics': ['cmd'], 'topic': {'cmd': {'name': '/cmd_vel'}}}}}))
    p = run_cli('run', '--params-file', str(path), '--duration', '3', '--live')
    assert p.returncode == 0, p.stderr
    assert re.search(r'^TOPIC\s+RATE Hz', p.stdout, re.M), p.stdout
    assert re.search(r'^/cmd_vel .* STALE no publishers', p.stdout, re.M), p.stdout


#: What a topic published at its configured rate may show on a saturated machine: a measured
#: rate, latency or loss over its limit (topics/health.py's wording). Anything else (STALE, a
#: bad stamp, too few messages to measure) would be the monitor or the robot going wrong.
_LOAD_BREACH = re.compile(r'rate [\d.]+ Hz (below (half of )?[\d.]+ Hz min|above [\d.]+ Hz max)'
                          r'|rate [\d.]+ Hz: clears at [\d.]+ Hz \((half of )?[\d.]+ Hz (min|max)\)'
                          r'|latency p95 [\d.]+ ms above (twice )?[\d.]+ ms max'
                          r'|latency p95 [\d.]+ ms: clears at [\d.]+ ms \((twice )?[\d.]+ ms max\)'
                          r'|drops [\d.]+% (above [\d.]+% max: |: clears at [\d.]+% \()\d+ of \d+ .*'
                          r'|monitor fell behind: lost \d+ in [\d.]+ s')


def test_demo_runs_robot_monitors_controller_table_and_metrics_then_stops_cleanly(tmp_path):
    port = free_ports(3)    # the topic monitor's; node_monitor and liquid_inference take the next two
    log = open(tmp_path / 'demo.log', 'w+')
    proc = subprocess.Popen([*CLI, 'demo', '--duration', '15', '--metrics-port', str(port)],
                            stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=os.environ.copy())

    def demo_log() -> str:
        log.flush()
        return f'\ndemo log (tail):\n{(tmp_path / "demo.log").read_text()[-3000:]}'
    try:
        def imu_rate():
            try:
                with urllib.request.urlopen(f'http://127.0.0.1:{port}/metrics', timeout=2) as r:
                    text = r.read().decode()
            except OSError:
                return None
            m = re.search(r'liquid_edge_topic_rate_hz\{[^}]*topic="/imu/data"\} (\S+)', text)
            seen[:] = [m and float(m.group(1))]
            # Within 10 % of the simulated 200 Hz; the first windows after start-up, with every
            # process still loading, may hold less.
            return seen[0] if m and seen[0] == pytest.approx(200, rel=0.1) else None
        seen: list = []
        wait_for(imu_rate, 30, 'the demo to serve an IMU rate within 10 % of 200 Hz',
                 last=lambda: f'rate served {seen}{demo_log()}')
        children = psutil.Process(proc.pid).children(recursive=True)
        assert any('sim_robot' in ' '.join(c.cmdline()) for c in children)
        assert any('liquid_inference' in ' '.join(c.cmdline())
                   for c in children)

        def scrape_or_none(p):
            try:
                return scrape(p)
            except OSError:
                return None
        # node_monitor: the simulated robot is an expected node, and it is up.
        wait_for(lambda: (lambda t: t and sample_value(t, 'liquid_edge_node_up',
                                                        node='/sim_robot') == 1)(
            scrape_or_none(port + 1)), 20, 'node_monitor to see /sim_robot up', last=demo_log)
        # liquid_inference: the shipped model steps on the IMU and is scored against odom.
        text = wait_for(lambda: (lambda t: t if t and (sample_value(
            t, 'liquid_edge_inferences_total') or 0) > 200 and sample_value(
            t, 'liquid_edge_model_accuracy') is not None else None)(scrape_or_none(port + 2)),
            20, 'inference metrics with an accuracy', last=demo_log)
        assert sample_value(text, 'liquid_edge_inference_errors_total',
                            reason='non_finite_output') == 0
        assert proc.wait(60) == 0, demo_log()
    finally:
        if proc.poll() is None:
            # A failed run must not leave the demo's robot and controller on the test domain.
            for c in psutil.Process(proc.pid).children(recursive=True):
                c.kill()
            proc.kill()
            proc.wait()
    out = (tmp_path / 'demo.log').read_text()
    assert f'http://127.0.0.1:{port}/metrics' in out
    # Every simulated topic was measured throughout, and the last table printed still measures
    # each one. The demo's thresholds fit sim_robot (test_topics_config), so on an idle machine
    # every topic is OK; on two saturated cores a topic may stay WARN or ERROR for the whole run
    # (reliable scans delivered 0.3-0.9 s late, best-effort IMU samples dropped), and the monitor
    # must then say which measured limit is broken, never lose the topic (STALE, no publishers).
    last = out[out.rindex('TOPIC '):]
    assert re.search(r'^nodes: 4/4 expected up', out, re.M), out
    acc = [float(a) / 100 for a in re.findall(
        r'^liquid_inference: outputs OK accuracy (\d+)% vs /odom, last \d+ outputs$', out, re.M)]
    # The shipped model on sim_robot's motion (0.3 m/s, 0.2 rad/s): right most of the time.
    assert acc and acc[-1] >= 0.85, out
    # The controller's stamped command: its header latency is the sensor-to-command latency.
    assert re.search(r'^/cmd_vel_lnn +[\d.]+ +- +[\d.]+ ms ', last, re.M), last
    for topic in ('/imu/data', '/odom', '/scan', '/camera/image_raw', '/chatter'):
        rows = re.findall(rf'^{re.escape(topic)} +(\S+) .*  (OK|WARN|ERROR|STALE) (.*)$', out, re.M)
        first = next((i for i, r in enumerate(rows) if r[0] != '-'), None)
        assert first is not None, f'{topic} never measured:\n{out}'
        for rate, level, message in rows[first:]:
            assert rate != '-' and level != 'STALE', f'{topic} lost while published: {message}'
            if level != 'OK':
                parts = re.sub(r' \(\+\d+ more\)$', '', message).split('; ')
                assert all(_LOAD_BREACH.fullmatch(part) for part in parts), \
                    f'{topic} {level}: {message}'
        row = re.search(rf'^{re.escape(topic)} +(\S+) .*  (OK|WARN|ERROR|STALE) ', last, re.M)
        assert row and row.group(2) != 'STALE' and float(row.group(1)) > 0, last
    # The simulated robot and the controller went down with the demo.
    assert wait_for(lambda: all(not c.is_running() or c.status() == psutil.STATUS_ZOMBIE
                                for c in children), 10, 'sim_robot and liquid_inference to exit')


def _agent_args(tmp_path, *extra: str) -> list:
    return ['agent', '--remote-write-url', 'https://central.example:9090/api/v1/write',
            '--robot', 'r7', '--storage-path', str(tmp_path / 'wal'), *extra]


def test_agent_prints_the_shipped_config_with_this_robot_filled_in(tmp_path):
    ca, pw = tmp_path / 'ca.pem', tmp_path / 'pw'
    ca.write_text('x')
    pw.write_text('secret')
    p = run_cli(*_agent_args(tmp_path, '--ca-file', str(ca), '--username', 'robot',
                             '--password-file', str(pw), '--ports', '9201,9202,9203',
                             '--print-config'))
    assert p.returncode == 0, p.stderr
    text, command = p.stdout.rsplit('# ', 1)
    config = yaml.safe_load(text)
    assert config['global']['external_labels'] == {'robot': 'r7'}
    (remote,) = config['remote_write']
    assert remote['url'] == 'https://central.example:9090/api/v1/write'
    assert remote['tls_config'] == {'ca_file': str(ca)}
    assert remote['basic_auth'] == {'username': 'robot', 'password_file': str(pw)}
    assert [sc['static_configs'][0]['targets'] for sc in config['scrape_configs']] == \
        [['localhost:9201'], ['localhost:9202'], ['localhost:9203']]
    assert '--enable-feature=agent' in command and f'--storage.agent.path={tmp_path / "wal"}' in command
    assert '--storage.agent.retention.max-time=26h' in command
    assert not (tmp_path / 'wal').exists(), '--print-config starts and writes nothing'


@pytest.mark.parametrize('extra, problem', [
    (['--remote-write-url', 'ftp://x'], '--remote-write-url: must be an http(s) URL'),
    (['--username', 'robot'], '--username and --password-file go together'),
    (['--ca-file', '/nonexistent/ca.pem'], '--ca-file: /nonexistent/ca.pem: not a readable file'),
    (['--ports', '9108,9109'], '--ports: must be three ports'),
    (['--scrape-interval', 'fast'], "--scrape-interval: must be a Prometheus duration"),
])
def test_agent_rejects_bad_arguments_in_one_line(tmp_path, extra, problem):
    p = run_cli(*_agent_args(tmp_path, *extra))
    assert p.returncode == 2
    lines = own_lines(p.stderr)
    assert len(lines) == 1 and problem in lines[0], p.stderr
    assert not (tmp_path / 'wal').exists()


def _template_with(path: str, value) -> dict:
    """The shipped robot-agent.yml with `value` set at the dotted `path` (list indices as ints)."""
    config = yaml.safe_load((REPO / 'config' / 'prometheus' / 'robot-agent.yml').read_text())
    *parents, last = [int(p) if p.isdigit() else p for p in path.split('.')]
    node = config
    for p in parents:
        node = node[p] if isinstance(p, int) else node.setdefault(p, {})
    node[last] = value
    return config


@pytest.mark.parametrize('path, value, where, use', [
    ('remote_write.0.authorization', {'credentials': 's3cret'},
     'remote_write[0].authorization.credentials', 'use credentials_file'),
    ('remote_write.0.bearer_token', 's3cret', 'remote_write[0].bearer_token',
     'use bearer_token_file'),
    ('remote_write.0.oauth2', {'client_id': 'robot', 'client_secret': 's3cret',
                               'token_url': 'https://auth.example/token'},
     'remote_write[0].oauth2.client_secret', 'use client_secret_file'),
    ('remote_write.0.basic_auth', {'username': 'robot', 'password': 's3cret'},
     'remote_write[0].basic_auth.password', 'use password_file'),
    ('remote_write.0.tls_config', {'cert_file': '/c.pem', 'key': 'PRIVATE KEY'},
     'remote_write[0].tls_config.key', 'use key_file'),
    ('remote_write.0.headers', {'Authorization': 'Bearer s3cret'},
     'remote_write[0].headers', 'use authorization.credentials_file'),
    ('remote_write.0.sigv4', {'region': 'eu-west-1', 'secret_key': 's3cret'},
     'remote_write[0].sigv4.secret_key', 'use the AWS credential chain'),
    ('scrape_configs.0.authorization', {'credentials': 's3cret'},
     'scrape_configs[0].authorization.credentials', 'use credentials_file'),
])
def test_agent_refuses_inline_credentials_of_any_kind(tmp_path, path, value, where, use):
    """Issue 17 item 9: only basic_auth and tls_config were replaced; a template carrying
    `authorization`, `bearer_token` or `oauth2` credentials went into the written config (then
    world-readable). Any inline credential is one line naming it and its file form; nothing is
    printed or written."""
    template = tmp_path / 'agent.yml'
    template.write_text(yaml.safe_dump(_template_with(path, value)))
    p = run_cli(*_agent_args(tmp_path, '--config-template', str(template), '--print-config'))
    assert p.returncode == 2, p.stdout
    lines = own_lines(p.stderr)
    assert len(lines) == 1 and f'--config-template: {where}: inline credentials are refused' \
        in lines[0] and use in lines[0], p.stderr
    assert 's3cret' not in p.stdout + p.stderr and 'PRIVATE KEY' not in p.stdout + p.stderr
    assert not (tmp_path / 'wal').exists()


def test_agent_accepts_the_file_forms(tmp_path):
    secret = tmp_path / 'token'
    secret.write_text('s3cret')
    template = tmp_path / 'agent.yml'
    template.write_text(yaml.safe_dump(_template_with(
        'remote_write.0.authorization', {'type': 'Bearer', 'credentials_file': str(secret)})))
    p = run_cli(*_agent_args(tmp_path, '--config-template', str(template), '--print-config'))
    assert p.returncode == 0, p.stderr
    (remote,) = yaml.safe_load(p.stdout.rsplit('# ', 1)[0])['remote_write']
    assert remote['authorization'] == {'type': 'Bearer', 'credentials_file': str(secret)}


@pytest.mark.skipif(not shutil.which('prometheus'), reason='Debian package prometheus missing')
def test_agent_writes_its_configuration_readable_by_its_owner_only(tmp_path):
    """Issue 17 item 9: the rendered configuration was written with the umask's mode (0644 under
    the usual 022), readable by every local user. Written 0600 now, also over an older file of
    a wider mode; the real prometheus then runs on it (and stops on SIGINT)."""
    pw = tmp_path / 'pw'
    pw.write_text('secret')
    wal = tmp_path / 'wal'
    wal.mkdir()
    config = wal / 'robot-agent.yml'
    config.write_text('old')
    config.chmod(0o644)
    listen = f'127.0.0.1:{free_port()}'
    old_umask = os.umask(0o022)
    try:
        proc = subprocess.Popen(
            [*CLI, *_agent_args(tmp_path, '--username', 'robot', '--password-file', str(pw),
                                '--listen-address', listen)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    finally:
        os.umask(old_umask)
    try:
        wait_for(lambda: config.read_text() != 'old', 30, 'the configuration written')
        assert oct(config.stat().st_mode & 0o777) == oct(0o600)
        assert 'password_file' in config.read_text()
        assert [p.name for p in wal.iterdir() if p.name.endswith('.tmp')] == []
        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f'http://{listen}/-/healthy', timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False
        wait_for(lambda: proc.poll() is None and healthy(), 30, 'prometheus running on it')
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert proc.returncode == 0, out


def test_demo_banner_names_every_port_when_they_are_picked_free(tmp_path):
    """Issue 17 item 10: with `--metrics-port 0` the banner left out liquid_inference, which runs
    in a process of its own and picks its own free port: nobody could find where to scrape it.
    The banner names it once the process has bound it, and it is the inference node's."""
    log = tmp_path / 'demo.log'
    with open(log, 'w') as out:
        proc = subprocess.Popen([*CLI, 'demo', '--duration', '60', '--metrics-port', '0'],
                                stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                env=os.environ.copy())
    banner = re.compile(r'^liquid-edge-monitor demo \| metrics on http://127\.0\.0\.1: '
                        r'topic_monitor (\d+), node_monitor (\d+), liquid_inference (\d+) \|', re.M)
    try:
        m = wait_for(lambda: banner.search(log.read_text()), 45, 'a banner with three ports',
                     last=lambda: log.read_text()[-2000:])
        ports = [int(p) for p in m.groups()]
        assert len(set(ports)) == 3 and 0 not in ports
        text = wait_for(lambda: (lambda t: t if t and 'liquid_edge_inferences_total' in t
                                 else None)(_scrape_or_none(ports[2])), 20,
                        'the inference metrics on the announced port')
        assert 'liquid_edge_topic_messages_total' not in text
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            for c in psutil.Process(proc.pid).children(recursive=True):
                c.kill()
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log.read_text()[-3000:]


def _scrape_or_none(port: int):
    try:
        return scrape(port)
    except OSError:
        return None


@pytest.mark.parametrize('value', ['-1', '65534', 'x'])
def test_demo_metrics_port_must_leave_room_for_three(value):
    p = run_cli('demo', '--metrics-port', value)
    assert p.returncode == 2 and '--metrics-port' in p.stderr, p.stderr
