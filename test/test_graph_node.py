"""node_monitor end to end: real nodes in other processes and in this one, over Fast DDS.

An expected node (sim_robot) is started, stopped and restarted in its own process; two nodes of
this process make a QoS mismatch; the test reads what a user would: /diagnostics and the Prometheus
endpoint.
"""
from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from conftest import REPO, free_port, own_lines, wait_for
from prometheus_client.parser import text_string_to_metric_families
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
    proc = RosProcess('liquid_edge_ros_monitor.graph.node', ['--ros-args', '--params-file',
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
        # Not an issue (issue 18 item 3): the metric counts what /diagnostics calls a problem.
        text = scrape(port)
        assert all(sample_value(text, 'liquid_edge_graph_issues', topic='/nm_qos', kind=k)
                   is None for k in ('qos_incompatible', 'no_subscribers'))
        assert sample_value(text, 'liquid_edge_graph_unsubscribed_topics') >= 1
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
    wait_for(lambda: listener.message('node_monitor: host cpu').startswith('CPU '), 10,
             'a CPU sample (one host period after the start: psutil measures since a prime)')
    text = wait_for(lambda: (lambda t: t if 'liquid_edge_host_cpu_usage_ratio' in t and
                             'cpu="total"' in t else None)(scrape(port)), 10, 'host metrics')
    cpu = sample_value(text, 'liquid_edge_host_cpu_usage_ratio', cpu='total')
    assert 0.0 <= cpu <= 1.0
    assert sample_value(text, 'liquid_edge_host_disk_free_ratio', path='/') > 0
    assert sample_value(text, 'liquid_edge_host_memory_total_bytes') > 0
    assert sample_value(text, 'liquid_edge_host_sensor_available', sensor='battery') in (0, 1)
    # Hardware the host lacks has no OK status of its own; host cpu names it once.
    cpu_values = listener.values('node_monitor: host cpu')
    for sensor, status, word in (('battery', 'host battery', 'battery'),
                                 ('temperature', 'host temperature', 'temperature sensors')):
        if sample_value(text, 'liquid_edge_host_sensor_available', sensor=sensor) == 0:
            assert f'node_monitor: {status}' not in listener.names(), status
            assert word in cpu_values.get('not present', ''), cpu_values


def test_a_robot_whose_topics_nobody_subscribes_has_no_graph_problem(monitor, ros_process):
    """sim_robot publishes odom and chatter and nobody subscribes: /diagnostics says '... no
    problems' and liquid_edge_graph_issues has no series (it had one no_subscribers per topic, so
    an alert on it fired while rqt showed nothing). The topics are listed as information, with
    the subscribers graph.ignore_nodes left out counted."""
    listener, port, _proc, _tmp = monitor
    ros_process('liquid_edge_ros_monitor.sim_robot', *SIM_ARGS)
    graph = 'node_monitor: graph'
    # (Discovery may show an endpoint a moment before the name of its node.)
    wait_for(lambda: listener.values(graph).get(f'{NS}/odom') ==
             f'no subscriber; published by {SIM}' and f'{NS}/chatter' in listener.values(graph),
             20, 'sim_robot topics in the graph', last=lambda: listener.values(graph))
    text = scrape(port)
    issues = [s for fam in text_string_to_metric_families(text)
              if fam.name == 'liquid_edge_graph_issues' for s in fam.samples]
    values = listener.values(graph)
    assert issues == [] and values['problems'] == '0', (issues, values)
    assert listener.level(graph) == 0 and 'no problems' in listener.message(graph)
    assert values[f'{NS}/odom'] == f'no subscriber; published by {SIM}'
    # The test's /diagnostics listener is ignored by the fixture's graph.ignore_nodes: said so.
    assert values['/diagnostics'].startswith(
        'no subscriber (1 subscriber ignored by graph.ignore_nodes); published by ')
    assert int(values['topics without subscriber']) == \
        sample_value(text, 'liquid_edge_graph_unsubscribed_topics') >= 2


def test_tool_nodes_get_no_node_status(monitor):
    """rqt's node, a ros2 CLI node and the demo's live view are tools, not parts of the robot."""
    listener, port, _proc, _tmp = monitor
    tools = [Node('rqt_gui_py_node_31337'), Node('liquid_edge_live_view')]
    visitor = Node('nm_visitor')
    try:
        # Once the visitor (made last) has its status, the graph read saw the tools too.
        wait_for(lambda: listener.level('node_monitor: node /nm_visitor') == 0, 20, 'visitor up')
        text = scrape(port)
        for t in ('/rqt_gui_py_node_31337', '/liquid_edge_live_view'):
            assert f'node_monitor: node {t}' not in listener.names(), t
            assert sample_value(text, 'liquid_edge_node_up', node=t) is None, t
        assert sample_value(text, 'liquid_edge_node_up', node='/nm_visitor') == 1
    finally:
        for n in (*tools, visitor):
            n.destroy_node()


def _start(tmp_path: Path, *ros_args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'liquid_edge_ros_monitor.graph.node',
                           '--ros-args', *ros_args], capture_output=True, text=True, timeout=60,
                          cwd=REPO)


@pytest.mark.parametrize('args,fragment', [
    (('-p', "expected_nodes:=['/a', '/a']"), "parameter 'expected_nodes': '/a' is listed twice"),
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


def test_durations_follow_sim_time(ros, ros_process, tmp_path):
    """With use_sim_time and /clock at 2x wall speed, 'up for' grows twice as fast as wall time,
    and the start-up is timed from the first /clock, not from time zero."""
    import threading
    import time

    from rclpy.executors import SingleThreadedExecutor
    from rosgraph_msgs.msg import Clock as ClockMsg

    listener = DiagnosticsListener('test_sim_listener')
    clock_node = Node('test_sim_clock')
    watched = Node('watched', namespace='/nm_sim')
    pub = clock_node.create_publisher(ClockMsg, '/clock', 10)
    start, sim_start = time.time_ns(), 1_000 * 1_000_000_000

    def tick() -> None:
        msg = ClockMsg()
        msg.clock.sec, msg.clock.nanosec = divmod(sim_start + 2 * (time.time_ns() - start),
                                                  1_000_000_000)
        pub.publish(msg)
    clock_node.create_timer(0.005, tick)
    executor = SingleThreadedExecutor()
    executor.add_node(clock_node)
    executor.add_node(watched)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        # Renamed: the module's other monitor reports /nm_sim/watched too, under 'node_monitor: '.
        ros_process('liquid_edge_ros_monitor.graph.node', '--ros-args', '-r', '__ns:=/nm_sim',
                    '-r', '__node:=sim_monitor',
                    '-p', 'use_sim_time:=true', '-p', "expected_nodes:=['watched', 'ghost']",
                    '-p', 'metrics_port:=-1', '-p', 'host.enabled:=false',
                    '-p', 'graph.enabled:=false', '-p', 'period:=0.2',
                    '-p', 'diagnostic_updater.period:=0.2')
        name = 'sim_monitor: node /nm_sim/watched'
        wait_for(lambda: listener.level(name) == 0, 30, 'watched node up')

        def up_for() -> float:
            return float(listener.values(name)['for (s)'])
        a, t_a = up_for(), time.monotonic()
        wait_for(lambda: up_for() >= a + 3.0, 10, 'three simulated seconds')
        b, t_b = up_for(), time.monotonic()
        assert (b - a) / (t_b - t_a) == pytest.approx(2.0, rel=0.35)
        ghost = wait_for(lambda: listener.message('sim_monitor: node /nm_sim/ghost')
                         if listener.level('sim_monitor: node /nm_sim/ghost') == 2 else None,
                         10, 'ghost missing after the grace')
        value, unit = ghost.split('not seen in ')[1].split()[:2]
        # Timed from the first /clock (seconds), not from sim time 0 (1000 s = '16.7 min').
        assert unit == 's' and float(value) < 60, ghost
    finally:
        executor.shutdown(timeout_sec=2)
        thread.join(5)
        watched.destroy_node()
        clock_node.destroy_node()
        listener.close()


def test_runs_without_expected_nodes_and_says_so(ros, ros_process):
    """No configuration at all: the graph and host are watched, nodes seen are reported, and the
    graph status says that no expected nodes are configured (it used to refuse to start)."""
    port = free_port()
    proc = ros_process('liquid_edge_ros_monitor.entry', 'node_monitor', '--ros-args',
                       '-r', '__ns:=/nm_empty', '-p', f'metrics_port:={port}',
                       '-p', 'period:=0.2', '-p', 'diagnostic_updater.period:=0.2')
    listener = DiagnosticsListener('test_nm_empty_listener')
    try:
        name = 'node_monitor: graph'
        wait_for(lambda: 'no expected nodes configured' in listener.message(name), 20,
                 'the graph status')
        assert listener.values(name)['expected nodes'] == 'none configured'
        wait_for(lambda: listener.status('node_monitor: host cpu'), 20, 'host status')
        wait_for(lambda: sample_value(scrape(port), 'liquid_edge_node_up',
                                      node='/test_nm_empty_listener', expected='false') == 1,
                 20, 'a node seen in the graph')
        # The monitor is always expected by itself (issue 17 item 13), not 'not expected'.
        own = '/nm_empty/node_monitor'
        assert sample_value(scrape(port), 'liquid_edge_node_up', node=own, expected='true') == 1
        assert sample_value(scrape(port), 'liquid_edge_node_up', node=own,
                            expected='false') is None
        # The module's `monitor` (robot test_robot) sees this node_monitor too, as a node it
        # does not expect, under the same status name: only this one's statuses count (hardware
        # id: the host name, the default robot). CI once read the other's "(not expected)".
        seen = []

        def own_status_up() -> bool:
            s = listener.status(f'node_monitor: node {own}')
            if s is not None and s.hardware_id == socket.gethostname() \
                    and s.message.startswith('up '):
                seen.append(s)
            return bool(seen)
        wait_for(own_status_up, 20, 'its own node status')
        assert 'not expected' not in seen[0].message
        assert {kv.key: kv.value for kv in seen[0].values}['expected'] == 'yes'
    finally:
        listener.close()
    assert proc.stop() == 0, proc.output()


def test_a_hung_disk_is_stale_and_absent_while_the_rest_of_the_host_stays_live(ros, hung_disk):
    """Fault injection: disk_usage blocks on one path (a hung NFS mount). That disk goes STALE on
    /diagnostics and its metrics disappear; CPU, memory and the other disk keep being sampled."""
    import threading

    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from liquid_edge_ros_monitor.graph.node import NodeMonitor
    port = free_port()
    listener = DiagnosticsListener('test_hung_listener')
    node = NodeMonitor(namespace='/nm_hung', cli_args=['--ros-args', '-r', '__node:=hung_monitor'],
                       parameter_overrides=[
                           Parameter('expected_nodes', value=['/nm_hung/nobody']),
                           Parameter('metrics_port', value=port),
                           Parameter('graph.enabled', value=False),
                           Parameter('diagnostic_updater.period', value=0.2),
                           Parameter('host.period', value=0.2),
                           Parameter('host.disk_paths', value=['/', '/hung'])])
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        wait_for(lambda: listener.level('hung_monitor: host disk /hung') == 3, 10, 'hung disk STALE')
        assert 'disk /hung not sampled for' in listener.message('hung_monitor: host disk /hung')

        def others_live() -> bool:
            # Each part samples on its own thread every 0.2 s and is stale after 0.4 s, so one
            # read may catch a part a scheduling hiccup late: poll until a read shows them all
            # live. The hung disk, though, must be absent from every scrape.
            text = scrape(port)
            assert sample_value(text, 'liquid_edge_host_disk_free_ratio', path='/hung') is None
            age = sample_value(text, 'liquid_edge_host_sample_age_seconds', part='cpu')
            return (listener.level('hung_monitor: host cpu') in (0, 1)
                    and listener.level('hung_monitor: host disk /') == 0
                    and listener.level('hung_monitor: host memory') in (0, 1, 2)
                    and (sample_value(text, 'liquid_edge_host_disk_free_ratio', path='/') or 0) > 0
                    and age is not None and age <= 0.4
                    and sample_value(text, 'liquid_edge_host_cpu_usage_ratio', cpu='total')
                    is not None)
        wait_for(others_live, 10, 'cpu, memory and disk / live beside the hung disk')
    finally:
        hung_disk.set()
        executor.shutdown(timeout_sec=2)
        node.destroy_node()
        listener.close()
