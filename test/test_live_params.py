"""Thresholds changed on a running robot (issue 20 item 1), through the `SetParameters` service,
which is what `ros2 param set` (and rqt_reconfigure) calls.

topic_monitor and node_monitor run in their own processes beside sim_robot; each change is
checked as at start-up (a bad one is refused with the same one line and changes nothing), applied
at the next period, and the windows and counters of unchanged topics carry on.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import pytest
import yaml
from conftest import free_port, wait_for
from ros_helpers import DiagnosticsListener, ParameterClient, sample_value, scrape

from liquid_edge_ros_monitor.core.levels import ERROR, OK, WARN

SIM = ['-p', 'imu.rate:=200.0', '-p', 'camera.enabled:=false', '-p', 'scan.enabled:=false']


def params_file(tmp: Path, ns: str, node: str, params: Dict[str, Any]) -> Path:
    f = tmp / f'{node}.yaml'
    f.write_text(yaml.safe_dump({f'{ns}/{node}': {'ros__parameters': params}}))
    return f


def test_topic_thresholds_topics_and_patterns_change_at_run_time(ros, ros_process, tmp_path):
    ns = '/live_topics'
    port = free_port()
    listener = DiagnosticsListener('test_live_topics_listener')
    params = params_file(tmp_path, ns, 'topic_monitor', {
        'metrics_port': port, 'update_period': 0.5, 'diagnostic_updater.period': 0.5,
        'discovery': {'enabled': True, 'period': 0.5, 'include': ['.*chatter'],
                      'exclude': []},
        'topics': ['imu'], 'topic': {'imu': {'name': 'imu/data', 'expected_rate': 200.0,
                                             'tolerance': 0.1}}})
    ros_process('liquid_edge_ros_monitor.topics.node', '--ros-args', '-r', f'__ns:={ns}',
                '--params-file', str(params))
    ros_process('liquid_edge_ros_monitor.sim_robot', '--ros-args', '-r', f'__ns:={ns}', *SIM)
    imu, odom, chatter = (f'topic_monitor: {ns}/{t}' for t in ('imu/data', 'odom', 'chatter'))
    client = ParameterClient(f'{ns}/topic_monitor')
    try:
        wait_for(lambda: listener.level(imu) == OK and listener.level(chatter) is not None, 30,
                 'the IMU OK and chatter discovered')

        def total():
            return sample_value(scrape(port), 'liquid_edge_topic_messages_total',
                                topic=f'{ns}/imu/data')
        before = wait_for(total, 10, "the IMU's message count")
        # A bad value: refused with the start-up line, nothing changed.
        r = client.set('topic.imu.tolerance', 1.5)
        assert not r.successful
        assert r.reason == "parameter 'topic.imu.tolerance': must be in [0, 1), got 1.5"
        assert client.get('topic.imu.tolerance').double_value == pytest.approx(0.1)
        # A read-only one: refused by its descriptor.
        assert not client.set('window', 3.0).successful
        # The IMU's expected rate halved: WARN (rate above the new maximum), window kept.
        assert client.set('topic.imu.expected_rate', 100.0).successful
        wait_for(lambda: listener.level(imu) == WARN, 10, 'the IMU WARN at the new rate',
                 last=lambda: listener.message(imu))
        assert 'rate' in listener.message(imu)
        assert total() >= before                        # counters never went back
        # A new listed topic: its name first, then its key.
        assert listener.status(odom) is None            # neither listed nor discovered
        assert client.set('topic.odom.name', 'odom').successful
        assert client.set('topic.odom.expected_rate', 50.0).successful
        assert client.set('topics', ['imu', 'odom']).successful
        wait_for(lambda: listener.level(odom) == OK, 15, 'odom listed and OK',
                 last=lambda: listener.message(odom))
        assert client.get('topic.odom.max_latency').type == 3      # declared, a double
        # Discovery's patterns: chatter excluded now, forgotten.
        assert client.set('discovery.exclude', ['.*chatter']).successful
        wait_for(lambda: sample_value(scrape(port), 'liquid_edge_topic_status',
                                      topic=f'{ns}/chatter') is None, 10, 'chatter forgotten')
        # odom no longer listed, and not discovered: forgotten too.
        assert client.set('topics', ['imu']).successful
        wait_for(lambda: sample_value(scrape(port), 'liquid_edge_topic_status',
                                      topic=f'{ns}/odom') is None, 10, 'odom forgotten')
        assert total() >= before
    finally:
        client.close()
        listener.close()


def test_expected_nodes_and_host_thresholds_change_at_run_time(ros, ros_process, tmp_path):
    ns = '/live_nodes'
    listener = DiagnosticsListener('test_live_nodes_listener')
    ros_process('liquid_edge_ros_monitor.graph.node', '--ros-args', '-r', f'__ns:={ns}',
                '-p', 'metrics_port:=-1', '-p', 'period:=0.5', '-p', 'host.period:=0.5',
                '-p', 'diagnostic_updater.period:=0.5', '-p', "expected_nodes:=['sim_robot']")
    ros_process('liquid_edge_ros_monitor.sim_robot', '--ros-args', '-r', f'__ns:={ns}', *SIM)
    client = ParameterClient(f'{ns}/node_monitor')
    ghost = f'node_monitor: node {ns}/ghost'
    try:
        wait_for(lambda: listener.level(f'node_monitor: node {ns}/sim_robot') == OK, 30,
                 'sim_robot up')
        r = client.set('expected_nodes', ['sim_robot', 'bad name'])
        assert not r.successful and "parameter 'expected_nodes': 'bad name' is not a node name" \
            in r.reason, r.reason
        r = client.set('host.cpu_error', 0.5)          # below cpu_warn 0.9: ERROR is no worse
        assert not r.successful and 'host.cpu_error' in r.reason, r.reason
        assert client.set('expected_nodes', ['sim_robot', 'ghost']).successful
        wait_for(lambda: listener.level(ghost) == ERROR, 10, 'the missing node ERROR',
                 last=lambda: listener.message(ghost))
        assert client.set('host.cpu_warn', 0.0001).successful
        wait_for(lambda: listener.level('node_monitor: host cpu') == WARN, 10, 'CPU WARN',
                 last=lambda: listener.message('node_monitor: host cpu'))
        assert not client.set('host.disk_paths', ['/tmp']).successful   # a thread each: fixed
    finally:
        client.close()
        listener.close()
