"""node_monitor end to end: real nodes in other processes and in this one, over Fast DDS.

An expected node (sim_robot) is started, stopped and restarted in its own process; two nodes of
this process make a QoS mismatch; the test reads what a user would: /diagnostics and the Prometheus
endpoint.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from conftest import REPO, free_port, own_lines, wait_for
from ros_helpers import DiagnosticsListener, sample_value, scrape

NS = '/nm_test'
SIM = f'{NS}/sim_robot'
GHOST = f'{NS}/ghost'
SIM_ARGS = ['--ros-args', '-r', f'__ns:={NS}', '-p', 'imu.enabled:=false',
            '-p', 'camera.enabled:=false', '-p', 'scan.enabled:=false']


@pytest.fixture(scope='module')
def monitor(ros, tmp_path_factory):
    from conftest import RosProcess
    tmp = tmp_path_factory.mktemp('node_monitor')
    port = free_port()
    params = tmp / 'params.yaml'
    params.write_text(yaml.safe_dump({'/**/node_monitor': {'ros__parameters': {
        'expected_nodes': [SIM, GHOST],
        'period': 0.2,
        'startup_grace': 0.0,
        'metrics_port': port,
        'robot': 'test_robot',
        'diagnostic_updater': {'period': 0.2},
        'graph': {'ignore_nodes': ['/test_diagnostics_listener']},
        'host': {'period': 0.3, 'disk_paths': ['/', str(tmp / 'not_mounted')]},
    }}}))
    proc = RosProcess('liquid_edge_ros_monitor.node_monitor', ['--ros-args', '--params-file',
                                                               str(params)], tmp / 'nm.log')
    listener = DiagnosticsListener()
    try:
        wait_for(lambda: listener.status('node_monitor: graph'), 20, 'node_monitor diagnostics')
        yield listener, port, proc, tmp
    finally:
        listener.close()
        assert proc.stop() == 0, proc.output()


def test_expected_node_missing_up_down_and_restarted(monitor, ros_process):
    listener, port, _proc, _tmp = monitor
    name = f'node_monitor: node {SIM}'
    wait_for(lambda: listener.level(f'node_monitor: node {GHOST}') == 2, 10, 'ghost ERROR')
    assert listener.message(f'node_monitor: node {GHOST}').startswith('missing')
    wait_for(lambda: listener.level(name) == 2, 10, 'sim_robot missing')

    sim = ros_process('liquid_edge_ros_monitor.sim_robot', *SIM_ARGS)
    wait_for(lambda: listener.level(name) == 0, 20, 'sim_robot up')
    assert listener.message(name).startswith('up ')
    text = scrape(port)
    assert sample_value(text, 'liquid_edge_node_up', node=SIM, expected='true',
                        robot='test_robot') == 1
    assert sample_value(text, 'liquid_edge_node_up', node=GHOST, expected='true') == 0
    assert sample_value(text, 'liquid_edge_nodes_discovered') >= 2

    assert sim.stop() == 0
    wait_for(lambda: listener.level(name) == 2, 20, 'sim_robot down')
    assert listener.message(name).startswith('down for')
    assert sample_value(scrape(port), 'liquid_edge_node_up', node=SIM) == 0

    ros_process('liquid_edge_ros_monitor.sim_robot', *SIM_ARGS)
    wait_for(lambda: listener.level(name) == 0, 20, 'sim_robot up again')
    assert '1 restart' in listener.message(name)
    assert listener.values(name)['restarts'] == '1'
    wait_for(lambda: sample_value(scrape(port), 'liquid_edge_node_restarts_total', node=SIM) == 1,
             5, 'restart counted in metrics')


def test_qos_incompatibility_names_the_topic_and_both_nodes(monitor):
    listener, port, _proc, _tmp = monitor
    talker, sink = Node('qos_talker'), Node('qos_listener')
    pub = talker.create_publisher(
        String, '/nm_qos', QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT))
    sub = sink.create_subscription(
        String, '/nm_qos', lambda m: None, QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    name = 'node_monitor: topic /nm_qos'
    try:
        wait_for(lambda: listener.level(name) == 2, 20, 'QoS incompatibility on /nm_qos')
        msg = listener.message(name)
        assert '/qos_talker' in msg and '/qos_listener' in msg and 'reliable' in msg.lower()
        assert sample_value(scrape(port), 'liquid_edge_qos_incompatibilities', topic='/nm_qos') == 1
        assert sample_value(scrape(port), 'liquid_edge_graph_issues', topic='/nm_qos',
                            kind='qos_incompatible') == 1
        assert listener.level('node_monitor: graph') == 2
        # Fixed: the subscription goes; the published topic is only informational now.
        sink.destroy_subscription(sub)
        wait_for(lambda: sample_value(scrape(port), 'liquid_edge_qos_incompatibilities',
                                      topic='/nm_qos') is None, 20, 'incompatibility cleared')
        assert sample_value(scrape(port), 'liquid_edge_graph_issues', topic='/nm_qos',
                            kind='no_subscribers') == 1
    finally:
        talker.destroy_publisher(pub)
        talker.destroy_node()
        sink.destroy_node()


def test_host_statuses_and_metrics(monitor):
    listener, port, _proc, tmp = monitor
    missing = str(tmp / 'not_mounted')
    wait_for(lambda: listener.level(f'node_monitor: host disk {missing}') == 1, 10,
             'unreadable disk path WARN')
    assert listener.message(f'node_monitor: host disk {missing}').startswith(f'cannot read {missing}')
    assert listener.level('node_monitor: host disk /') is not None
    assert listener.status('node_monitor: host cpu').message.startswith('CPU ')
    text = wait_for(lambda: (lambda t: t if 'liquid_edge_host_cpu_usage_ratio' in t and
                             'cpu="total"' in t else None)(scrape(port)), 10, 'host metrics')
    cpu = sample_value(text, 'liquid_edge_host_cpu_usage_ratio', cpu='total')
    assert 0.0 <= cpu <= 1.0
    assert sample_value(text, 'liquid_edge_host_disk_free_ratio', path='/') > 0
    assert sample_value(text, 'liquid_edge_host_memory_total_bytes') > 0
    assert sample_value(text, 'liquid_edge_host_sensor_available', sensor='battery') in (0, 1)


def _start(tmp_path: Path, *ros_args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'liquid_edge_ros_monitor.node_monitor',
                           '--ros-args', *ros_args], capture_output=True, text=True, timeout=60,
                          cwd=REPO)


@pytest.mark.parametrize('args,fragment', [
    ((), "parameter 'expected_nodes': missing"),
    (('-p', "expected_nodes:=['/a']", '-p', 'host.cpu_warn:=0.9', '-p', 'host.cpu_error:=0.5'),
     "parameter 'host.cpu_error': 0.5 is below host.cpu_warn 0.9"),
    (('-p', "expected_nodes:=['/a']", '-p', 'host.disk_free_warn:=-1.0'),
     "parameter 'host.disk_free_warn': must be in [0, 1]"),
    (('-p', "expected_nodes:=['/a']", '-p', 'perid:=1.0'), "parameter 'perid': unknown parameter"),
])
def test_bad_parameters_stop_with_one_line(tmp_path, args, fragment):
    r = _start(tmp_path, *args)
    lines = own_lines(r.stderr)
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and fragment in lines[0], r.stderr
