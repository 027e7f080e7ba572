"""Our diagnostic_updater subset (diagnostic_updater_compat), the diagnostics facade and analyzers.yaml.

- Wrapper / task / composite semantics without DDS (upstream's Python behaviour; where upstream's own
  tests or docs state it, the test says so).
- Updater behaviour on a real node with its publisher replaced by a recorder (no DDS timing involved).
- Updater over real DDS: a listener node receives /diagnostics (names, hardware id, levels, stamps,
  period from the parameter, removeByName, force_update), and sim time drives the stamp.
- config/analyzers.yaml: parses, has the structure diagnostic_aggregator (ROS 2) needs, and puts our
  status names where we expect them in the rqt_robot_monitor tree.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Dict, List, Optional, Tuple

import pytest
import rclpy
import yaml
from builtin_interfaces.msg import Time as TimeMsg
from conftest import REPO, wait_for
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from aggregator_model import Aggregation, _remove_chaff, aggregator_parameters
from liquid_edge_ros_monitor.core import diagnostic_updater_compat as du
from liquid_edge_ros_monitor.core import diagnostics

OK, WARN, ERROR, STALE = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR, \
    DiagnosticStatus.STALE
PID = os.getpid()
ANALYZERS_YAML = REPO / 'config' / 'analyzers.yaml'


# --------------------------------------------------------------------------------------------------
# DiagnosticStatusWrapper

def test_wrapper_defaults_and_fields():
    d = du.DiagnosticStatusWrapper()
    assert isinstance(d, DiagnosticStatus)
    assert (d.level, d.message, d.name, d.hardware_id, list(d.values)) == (OK, '', '', '', [])
    d = du.DiagnosticStatusWrapper(level=WARN, message='test')   # upstream test_init_lvl_msg
    assert (d.level, d.message) == (WARN, 'test')


def test_levels_are_bytes():
    assert (OK, WARN, ERROR, STALE) == (b'\x00', b'\x01', b'\x02', b'\x03')
    assert (du.OK, du.WARN, du.ERROR, du.STALE) == (OK, WARN, ERROR, STALE)
    facade = (diagnostics.OK, diagnostics.WARN, diagnostics.ERROR, diagnostics.STALE)
    assert facade == (OK, WARN, ERROR, STALE)


def test_summary_forms():
    d = du.DiagnosticStatusWrapper()
    d.summary(WARN, 'test')
    assert (d.level, d.message) == (WARN, 'test')
    d.summary(DiagnosticStatus(level=ERROR, message='from msg'))
    assert (d.level, d.message) == (ERROR, 'from msg')
    d.summary(OK, 42)                       # upstream passes the message through str()
    assert (d.level, d.message) == (OK, '42')
    with pytest.raises(TypeError):
        d.summary(OK, 'a', 'b')


def test_clear_summary_keeps_values():
    d = du.DiagnosticStatusWrapper(level=ERROR, message='bad')
    d.add('k', 'v')
    d.clearSummary()
    assert (d.level, d.message) == (OK, '')
    assert [(kv.key, kv.value) for kv in d.values] == [('k', 'v')]


@pytest.mark.parametrize('start, merged, expected', [
    ((OK, 'ok'), (WARN, 'warn'), (WARN, 'warn')),            # upstream test: OK message dropped
    ((WARN, 'warn'), (ERROR, 'err'), (ERROR, 'warn; err')),  # upstream test: both non-OK joined
    ((ERROR, 'err'), (WARN, 'w'), (ERROR, 'err; w')),        # lower non-OK still joined, level kept
    ((WARN, 'w'), (OK, 'fine'), (WARN, 'w')),                # OK merged into non-OK: ignored
    ((OK, 'a'), (OK, 'b'), (OK, 'a; b')),                    # Python upstream joins OKs; C++ does not
    ((OK, ''), (OK, 'b'), (OK, 'b')),                        # no separator after an empty message
    ((WARN, ''), (ERROR, 'e'), (ERROR, 'e')),
    ((ERROR, 'e'), (STALE, 's'), (STALE, 'e; s')),           # STALE is the highest byte
])
def test_merge_summary(start, merged, expected):
    d = du.DiagnosticStatusWrapper()
    d.summary(*start)
    d.mergeSummary(*merged)
    assert (d.level, d.message) == expected
    d2 = du.DiagnosticStatusWrapper()
    d2.summary(*start)
    d2.mergeSummary(DiagnosticStatus(level=merged[0], message=merged[1]))
    assert (d2.level, d2.message) == expected


def test_add_appends_string_values_in_order():
    d = du.DiagnosticStatusWrapper()
    d.add('key', 'val')
    d.add('rate', f'{99.5:.1f}')
    assert [(kv.key, kv.value) for kv in d.values] == [('key', 'val'), ('rate', '99.5')]


def test_types_are_checked_where_they_are_set():
    """Upstream stores a wrong type silently and fails when publishing; ours fails at once."""
    d = du.DiagnosticStatusWrapper()
    with pytest.raises(AssertionError):
        d.add('rate', 3.2)
    with pytest.raises(AssertionError):
        d.summary(1, 'int level')
    with pytest.raises(AssertionError):
        d.level = 2
    assert d.level == OK and list(d.values) == []


# --------------------------------------------------------------------------------------------------
# Tasks

def test_diagnostic_task_base_and_function_task():
    t = du.DiagnosticTask('base')
    stat = du.DiagnosticStatusWrapper(level=WARN, message='untouched')
    assert t.getName() == 'base' and t.run(stat) is stat
    assert (stat.level, stat.message) == (WARN, 'untouched')

    calls = []

    def fn(s):
        calls.append(s)
        s.summary(OK, 'from fn')
        return s

    f = du.FunctionDiagnosticTask('func', fn)
    assert isinstance(f, du.DiagnosticTask) and f.getName() == 'func'
    out = f.run(stat)
    assert calls == [stat] and out is stat and (out.level, out.message) == (OK, 'from fn')


def _child(level: bytes, msg: str, key: str, seen: List[Tuple[bytes, str]]):
    def fn(stat):
        seen.append((stat.level, stat.message))
        stat.add(key, msg)
        stat.summary(level, msg)
        return stat
    return du.FunctionDiagnosticTask(key, fn)


def test_composite_merges_children():
    seen: List[Tuple[bytes, str]] = []
    comp = du.CompositeDiagnosticTask('imu')
    for level, msg, key in ((OK, 'fine', 'a'), (WARN, 'slow', 'b'), (ERROR, 'dead', 'c')):
        comp.addTask(_child(level, msg, key, seen))
    stat = du.DiagnosticStatusWrapper()
    stat.summary(WARN, 'incoming')
    out = comp.run(stat)
    assert seen == [(WARN, 'incoming')] * 3          # every child starts from the incoming summary
    assert (out.level, out.message) == (ERROR, 'slow; dead')
    assert [(kv.key, kv.value) for kv in out.values] == [('a', 'fine'), ('b', 'slow'), ('c', 'dead')]


def test_composite_all_ok_and_empty():
    comp = du.CompositeDiagnosticTask('two')
    comp.addTask(_child(OK, 'a', 'x', []))
    comp.addTask(_child(OK, 'b', 'y', []))
    out = comp.run(du.DiagnosticStatusWrapper())
    assert (out.level, out.message) == (OK, 'a; b')  # Python upstream joins OK messages
    empty = du.CompositeDiagnosticTask('none').run(du.DiagnosticStatusWrapper(level=ERROR, message='x'))
    assert (empty.level, empty.message) == (OK, '')  # no children: the fresh merged summary


# --------------------------------------------------------------------------------------------------
# diagnostics facade

def test_facade_exports_and_choice():
    for name in ('Updater', 'DiagnosticTask', 'FunctionDiagnosticTask', 'CompositeDiagnosticTask',
                 'DiagnosticStatusWrapper', 'OK', 'WARN', 'ERROR', 'STALE', 'UPSTREAM', 'level_to_int'):
        assert hasattr(diagnostics, name), name
    try:
        import diagnostic_updater  # noqa: F401
        upstream_installed = True
    except ImportError:
        upstream_installed = False
    assert diagnostics.UPSTREAM is upstream_installed
    if not upstream_installed:
        assert diagnostics.Updater is du.Updater
        assert diagnostics.DiagnosticStatusWrapper is du.DiagnosticStatusWrapper


def test_level_to_int():
    assert [diagnostics.level_to_int(x) for x in (OK, WARN, ERROR, STALE)] == [0, 1, 2, 3]
    assert [diagnostics.level_to_int(x) for x in (0, 1, 2, 3)] == [0, 1, 2, 3]
    assert diagnostics.level_to_int(bytearray(b'\x02')) == 2
    assert diagnostics.int_to_level(3) == STALE
    for bad in (4, -1, b'\x04', b''):
        with pytest.raises(ValueError):
            diagnostics.level_to_int(bad)
    for bad in ('1', 1.0, None, True):
        with pytest.raises(TypeError):
            diagnostics.level_to_int(bad)


# --------------------------------------------------------------------------------------------------
# ROS fixtures: one context for the module, one executor thread spinning the nodes it is given

class Spinner:
    def __init__(self, context: Context) -> None:
        self.context = context
        self.executor = SingleThreadedExecutor(context=context)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name='diag-test-spin', daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set() and self.context.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def add(self, node) -> None:
        self.executor.add_node(node)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        assert not self._thread.is_alive(), 'executor thread did not stop'
        self.executor.shutdown(timeout_sec=2.0)


class Listener:
    """A node that records every DiagnosticArray on /diagnostics."""

    def __init__(self, context: Context) -> None:
        self.node = rclpy.create_node(f'diag_test_listener_{PID}', context=context)
        self._lock = threading.Lock()
        self._arrays: List[DiagnosticArray] = []
        qos = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        self.sub = self.node.create_subscription(DiagnosticArray, '/diagnostics', self._cb, qos)

    def _cb(self, msg: DiagnosticArray) -> None:
        with self._lock:
            self._arrays.append(msg)

    def arrays(self, since: int = 0, prefix: str = '') -> List[DiagnosticArray]:
        """Arrays received (from index `since`) with a status whose name starts with `prefix`."""
        with self._lock:
            got = self._arrays[since:]
        return [a for a in got if any(s.name.startswith(prefix) for s in a.status)]

    def count(self) -> int:
        with self._lock:
            return len(self._arrays)


@pytest.fixture(scope='module')
def ros():
    context = Context()
    rclpy.init(context=context)
    spinner = Spinner(context)
    listener = Listener(context)
    spinner.add(listener.node)
    nodes = [listener.node]

    def make_node(name: str, **kwargs):
        node = rclpy.create_node(name, context=context, **kwargs)
        nodes.append(node)
        return node

    yield {'context': context, 'spinner': spinner, 'listener': listener, 'make_node': make_node}
    spinner.stop()
    for node in reversed(nodes):
        node.destroy_node()
    rclpy.shutdown(context=context)


class RecordingPublisher:
    def __init__(self) -> None:
        self.published: List[DiagnosticArray] = []

    def publish(self, msg: DiagnosticArray) -> None:
        self.published.append(msg)


def _recorded_updater(make_node, name: str, **kwargs) -> Tuple[du.Updater, RecordingPublisher]:
    node = make_node(name, **kwargs)
    updater = du.Updater(node)
    updater.publisher = RecordingPublisher()
    return updater, updater.publisher


def _ok(msg: str):
    def fn(stat):
        stat.summary(OK, msg)
        return stat
    return fn


# --------------------------------------------------------------------------------------------------
# Updater on a real node, publisher replaced by a recorder

def test_updater_declares_parameters_and_timer(ros):
    node = ros['make_node'](f'diag_params_{PID}')
    updater = du.Updater(node, period=2.5)
    assert node.get_parameter('diagnostic_updater.period').value == 2.5
    assert node.get_parameter('diagnostic_updater.use_fqn').value is False
    assert updater.period == 2.5
    assert updater.timer.timer_period_ns == 2_500_000_000
    assert updater.timer.callback_group is node.default_callback_group
    updater.period = 0.5
    assert updater.period == 0.5 and updater.timer.timer_period_ns == 500_000_000
    assert len([t for t in node.timers]) == 1      # the old timer is gone


def test_updater_with_already_declared_parameters_and_fqn(ros):
    overrides = [Parameter('diagnostic_updater.period', Parameter.Type.DOUBLE, 3.0),
                 Parameter('diagnostic_updater.use_fqn', Parameter.Type.BOOL, True)]
    updater, pub = _recorded_updater(
        ros['make_node'], f'diag_fqn_{PID}', namespace='/robot1', parameter_overrides=overrides,
        automatically_declare_parameters_from_overrides=True)
    assert updater.period == 3.0
    updater.setHardwareID('none')
    updater.add('check', _ok('fine'))
    updater.update()
    assert pub.published[-1].status[0].name == f'/robot1/diag_fqn_{PID}: check'


def test_updater_no_tasks_publishes_empty_array(ros):
    updater, pub = _recorded_updater(ros['make_node'], f'diag_empty_{PID}')
    updater.update()
    assert len(pub.published) == 1
    array = pub.published[0]
    assert list(array.status) == [] and array.header.stamp.sec != 0


def test_updater_add_update_broadcast(ros):
    name = f'diag_rec_{PID}'
    updater, pub = _recorded_updater(ros['make_node'], name)
    updater.setHardwareID('hw-1')

    updater.add('alpha', _ok('good'))               # add(name, fn): published at once as starting up
    assert len(pub.published) == 1
    first = pub.published[0].status[0]
    assert (first.name, first.level, first.message) == (f'{name}: alpha', OK, 'Node starting up')

    updater.add(du.FunctionDiagnosticTask('lazy', lambda stat: stat))   # never calls summary
    updater.update()
    array = pub.published[-1]
    by_name = {s.name: s for s in array.status}
    assert list(by_name) == [f'{name}: alpha', f'{name}: lazy']
    assert (by_name[f'{name}: alpha'].level, by_name[f'{name}: alpha'].message) == (OK, 'good')
    lazy = by_name[f'{name}: lazy']
    assert (lazy.level, lazy.message) == (ERROR, 'No message was set')
    assert all(s.hardware_id == 'hw-1' for s in array.status)
    assert all(type(s) is DiagnosticStatus for s in array.status)

    n = len(pub.published)
    updater.force_update()
    assert len(pub.published) == n + 1

    updater.broadcast(WARN, 'shutting down')
    b = pub.published[-1]
    assert [(s.name, s.level, s.message, s.hardware_id) for s in b.status] == [
        (f'{name}: alpha', WARN, 'shutting down', 'hw-1'),
        (f'{name}: lazy', WARN, 'shutting down', 'hw-1')]

    assert updater.removeByName('alpha') is True
    assert updater.removeByName('alpha') is False
    updater.update()
    assert [s.name for s in pub.published[-1].status] == [f'{name}: lazy']


def test_updater_task_exception_propagates(ros):
    updater, pub = _recorded_updater(ros['make_node'], f'diag_raise_{PID}')

    def boom(stat):
        raise RuntimeError('task failed')

    updater.add('boom', boom)
    with pytest.raises(RuntimeError):
        updater.update()
    updater.removeByName('boom')                     # the lock was released
    updater.update()
    assert list(pub.published[-1].status) == []


def test_updater_threads_add_and_remove_while_updating(ros):
    updater, pub = _recorded_updater(ros['make_node'], f'diag_threads_{PID}')
    updater.setHardwareID('none')
    errors: List[BaseException] = []
    stop = threading.Event()

    def churn():
        try:
            i = 0
            while not stop.is_set():
                updater.add(f't{i % 5}', _ok('x'))
                updater.removeByName(f't{(i + 2) % 5}')
                i += 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=churn) for _ in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 0.5
    updates = 0
    while time.monotonic() < deadline:
        updater.update()
        updates += 1
    stop.set()
    for t in threads:
        t.join(5.0)
    assert not errors and updates > 0
    assert all(s.name.startswith(f'diag_threads_{PID}: t') for a in pub.published for s in a.status)


# --------------------------------------------------------------------------------------------------
# Updater over DDS

def test_updater_publishes_on_diagnostics(ros):
    listener: Listener = ros['listener']
    name = f'diag_dds_{PID}'
    prefix = f'{name}: '
    node = ros['make_node'](name, parameter_overrides=[
        Parameter('diagnostic_updater.period', Parameter.Type.DOUBLE, 0.2)])
    updater = du.Updater(node)                       # default 1.0, the parameter says 0.2
    assert updater.period == pytest.approx(0.2)
    updater.setHardwareID('hw-test')

    def alpha(stat):
        stat.summary(OK, 'all good')
        stat.add('count', '3')
        return stat

    def beta(stat):
        stat.summary(WARN, 'slow')
        return stat

    updater.add('alpha', alpha)
    updater.add(du.FunctionDiagnosticTask('beta', beta))
    ros['spinner'].add(node)

    def full_arrays(since=0):
        return [a for a in listener.arrays(since, prefix) if a.status[0].hardware_id == 'hw-test']

    arrays = wait_for(lambda: (lambda got: got if len(got) >= 4 else None)(full_arrays()), 15.0,
                      'four periodic arrays from the updater')
    for a in arrays:
        assert [s.name for s in a.status] == [prefix + 'alpha', prefix + 'beta']
        assert a.header.stamp.sec != 0
        assert all(s.hardware_id == 'hw-test' for s in a.status)
    a = arrays[-1]
    assert (a.status[0].level, a.status[0].message) == (OK, 'all good')
    assert [(kv.key, kv.value) for kv in a.status[0].values] == [('count', '3')]
    assert (a.status[1].level, a.status[1].message) == (WARN, 'slow')
    stamps = [x.header.stamp.sec + x.header.stamp.nanosec * 1e-9 for x in arrays]
    gaps = sorted(b - a for a, b in zip(stamps, stamps[1:]))
    assert 0.1 < gaps[len(gaps) // 2] < 0.6, f'period from the parameter not used: gaps {gaps}'

    # removeByName: once an array without beta arrives, no later one has it (one writer, in order)
    since = listener.count()
    assert updater.removeByName('beta') is True
    def without_beta(x: DiagnosticArray) -> bool:
        return all(s.name != prefix + 'beta' for s in x.status)

    wait_for(lambda: any(without_beta(x) for x in listener.arrays(since, prefix)),
             10.0, 'an array without beta')
    later = listener.arrays(since, prefix)
    first_without = next(i for i, x in enumerate(later) if without_beta(x))
    n_now = listener.count()
    wait_for(lambda: len(listener.arrays(n_now, prefix)) >= 2, 10.0, 'two more arrays')
    for x in listener.arrays(since, prefix)[first_without:]:
        assert [s.name for s in x.status] == [prefix + 'alpha']


def test_force_update_publishes_now(ros):
    listener: Listener = ros['listener']
    name = f'diag_force_{PID}'
    prefix = f'{name}: '
    node = ros['make_node'](name, parameter_overrides=[
        Parameter('diagnostic_updater.period', Parameter.Type.DOUBLE, 60.0)])
    updater = du.Updater(node)
    updater.setHardwareID('hw-force')

    def gamma(stat):
        stat.summary(WARN, 'forced')
        return stat

    updater.add('gamma', gamma)
    ros['spinner'].add(node)
    wait_for(lambda: updater.publisher.get_subscription_count() >= 1, 15.0, 'the listener to match')
    assert not [a for a in listener.arrays(0, prefix) if a.status[0].message == 'forced']
    t0 = time.monotonic()
    updater.force_update()
    got = wait_for(lambda: [a for a in listener.arrays(0, prefix) if a.status[0].message == 'forced'],
                   5.0, 'the forced array')
    assert time.monotonic() - t0 < 5.0             # the timer would take 60 s
    s = got[0].status[0]
    assert (s.name, s.level, s.hardware_id) == (prefix + 'gamma', WARN, 'hw-force')
    assert got[0].header.stamp.sec != 0


def test_sim_time_stamps_and_zero_clock_is_skipped(ros):
    updater, pub = _recorded_updater(
        ros['make_node'], f'diag_sim_{PID}', parameter_overrides=[
            Parameter('use_sim_time', Parameter.Type.BOOL, True),
            Parameter('diagnostic_updater.period', Parameter.Type.DOUBLE, 60.0)])
    node = updater.node
    ros['spinner'].add(node)
    updater.setHardwareID('none')
    updater.add('sim', _ok('x'))                    # the starting-up publish is skipped too
    updater.update()
    assert node.get_clock().now().nanoseconds == 0
    assert pub.published == []

    clock_pub = ros['listener'].node.create_publisher(Clock, '/clock', 10)
    try:
        def clock_arrived():
            clock_pub.publish(Clock(clock=TimeMsg(sec=1234, nanosec=5)))
            return node.get_clock().now().nanoseconds >= 1234 * 10**9
        wait_for(clock_arrived, 15.0, 'the node clock to follow /clock', interval=0.1)
    finally:
        ros['listener'].node.destroy_publisher(clock_pub)
    updater.update()
    # the jump from 0 to 1234 s may also fire the (ROS-time) timer: every publish carries sim time
    assert pub.published
    assert all(a.header.stamp.sec == 1234 for a in pub.published)
    assert [s.name for s in pub.published[-1].status] == [f'diag_sim_{PID}: sim']


# --------------------------------------------------------------------------------------------------
# config/analyzers.yaml

def test_analyzers_yaml_structure():
    doc = yaml.safe_load(ANALYZERS_YAML.read_text())
    # the aggregator node is called `analyzers` (in any namespace)
    assert list(doc) == ['/**/analyzers']
    params = doc['/**/analyzers']['ros__parameters']
    group = params['liquid_edge']
    assert group['type'] == 'diagnostic_aggregator/AnalyzerGroup'
    assert group['path'] == 'Liquid Edge'
    subs = group['analyzers']
    assert {k: v['path'] for k, v in subs.items()} == {
        'topics': 'Topics', 'paths': 'Paths', 'nodes': 'Nodes', 'host': 'Host',
        'inference': 'Inference'}
    for key, sub in subs.items():
        assert sub['type'] == 'diagnostic_aggregator/GenericAnalyzer', key
        assert any(sub.get(k) for k in ('startswith', 'contains', 'regex', 'expected')), key
        for field in ('startswith', 'contains', 'remove_prefix', 'expected', 'regex'):
            if field in sub:
                assert isinstance(sub[field], list) and sub[field], (key, field)
                assert all(isinstance(x, str) for x in sub[field]), (key, field)
        assert isinstance(sub['timeout'], float), key       # as_double(): an int would throw
        assert isinstance(sub.get('discard_stale', False), bool), key


def _flat_parameters(ros) -> Dict[str, Parameter]:
    return aggregator_parameters(ros['make_node'])


def test_analyzers_yaml_as_aggregator_parameters(ros):
    params = _flat_parameters(ros)
    assert params['pub_rate'].type_ == Parameter.Type.DOUBLE
    agg = Aggregation(params)
    assert sorted(a['path'] for a in agg.analyzers) == [
        '/Liquid Edge/Host', '/Liquid Edge/Inference', '/Liquid Edge/Nodes', '/Liquid Edge/Paths',
        '/Liquid Edge/Topics']
    cases: Dict[str, Optional[str]] = {
        'topic_monitor: /imu/data': '/Liquid Edge/Topics/imu data',
        'topic_monitor: /cmd_vel': '/Liquid Edge/Topics/cmd_vel',
        'topic_monitor: /robot/camera/image_raw': '/Liquid Edge/Topics/robot camera image_raw',
        'topic_monitor: discovered topics': '/Liquid Edge/Topics/discovered topics',
        'topic_monitor: discovery': '/Liquid Edge/Topics/discovery',
        'topic_monitor: path controller': '/Liquid Edge/Paths/controller',
        '/robot1/topic_monitor: /imu/data': '/Liquid Edge/Topics/robot1 topic_monitor:  imu data',
        'node_monitor: node /ns/talker': '/Liquid Edge/Nodes/node  ns talker',
        'node_monitor: graph': '/Liquid Edge/Nodes/graph',
        'node_monitor: host cpu': '/Liquid Edge/Host/cpu',
        'node_monitor: host disk /data': '/Liquid Edge/Host/disk  data',
        '/robot1/node_monitor: host cpu': '/Liquid Edge/Host/robot1 node_monitor: host cpu',
        'liquid_inference: cfc_controller': '/Liquid Edge/Inference/cfc_controller',
        'cpu_monitor: CPU Usage': None,
        'topic_monitor_other: x': None,
        'my_topic_monitor: /x': None,
    }
    for status, expected in cases.items():
        placed = agg.place(status)
        assert placed == ([] if expected is None else [expected]), status
    # names that differ keep different leaves ('/' -> ' ' is one-to-one: topic names have no spaces)
    a, b = agg.place('topic_monitor: /a/b_c'), agg.place('topic_monitor: /a_b/c')
    assert a != b


def test_remove_chaff_matches_upstream_examples():
    # the example in diagnostic_aggregator's status_item.hpp
    assert _remove_chaff('/PREFIX/base_hokuyo_node: Connection Status', 'base_hokuyo_node') == \
        '/PREFIX/Connection Status'
    assert _remove_chaff('/Hokuyo/Tilt HK/tilt_node: Connection', 'tilt_node') == \
        '/Hokuyo/Tilt HK/Connection'
