"""topic_monitor in other situations, each test with processes of its own: a monitor that lacks
a message package, and a robot on simulated time."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
import rclpy
import yaml
from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from conftest import wait_for
from test_topics_node import Listener


def test_topic_of_an_unimportable_type_warns_and_others_are_measured(ros, ros_process, tmp_path):
    """A monitor without nav_msgs installed: /odom gets a WARN naming its type, /chatter works."""
    hide = tmp_path / 'hide'
    hide.mkdir()
    (hide / 'sitecustomize.py').write_text(
        'import sys\n'
        'class _Hide:\n'
        '    def find_spec(self, name, path=None, target=None):\n'
        '        if name == "nav_msgs" or name.startswith("nav_msgs."):\n'
        '            raise ModuleNotFoundError(f"No module named {name!r}")\n'
        'sys.meta_path.insert(0, _Hide())\n')
    listener = Listener(truth_topic=None)
    try:
        ros_process('liquid_edge_ros_monitor.sim_robot', '--ros-args', '-r', '__ns:=/u',
                    '-p', 'imu.enabled:=false', '-p', 'scan.enabled:=false',
                    '-p', 'camera.enabled:=false')
        env_path = os.environ.get('PYTHONPATH', '')
        os.environ['PYTHONPATH'] = f'{hide}{os.pathsep}{env_path}' if env_path else str(hide)
        try:
            ros_process('liquid_edge_ros_monitor.topics.node', '--ros-args',
                        '-p', 'metrics_port:=-1', '-p', 'discovery.include:=["/u/.*"]')
        finally:
            os.environ['PYTHONPATH'] = env_path
        s = wait_for(lambda: (lambda s: s if s and s.level == DiagnosticStatus.WARN else None)(
            listener.status('/u/odom')), 30, 'WARN on /u/odom')
        assert "type 'nav_msgs/msg/Odometry' cannot be imported" in s.message
        def chatter_rate() -> float:     # 'unknown' until the window holds two messages
            value = listener.values('/u/chatter').get('rate (Hz)', 'unknown')
            return 0.0 if value == 'unknown' else float(value)
        wait_for(lambda: chatter_rate() > 1, 20, '/u/chatter measured beside it')
    finally:
        listener.close()


def _hide_nav_msgs(tmp_path) -> str:
    """A PYTHONPATH entry whose sitecustomize makes nav_msgs unimportable in that process."""
    hide = tmp_path / 'hide'
    hide.mkdir(exist_ok=True)
    (hide / 'sitecustomize.py').write_text(
        'import sys\n'
        'class _Hide:\n'
        '    def find_spec(self, name, path=None, target=None):\n'
        '        if name == "nav_msgs" or name.startswith("nav_msgs."):\n'
        '            raise ModuleNotFoundError(f"No module named {name!r}")\n'
        'sys.meta_path.insert(0, _Hide())\n')
    return str(hide)


def test_a_topic_that_changes_to_an_unimportable_type_stays_warn(ros, ros_process, tmp_path):
    """/tc/changing is a String topic, measured; its publisher is replaced by an Odometry one,
    a type the monitor cannot import: WARN naming the type, and it stays WARN (not OK 'rate
    unknown' on the old type's subscription, which receives nothing) discovery after discovery."""
    from nav_msgs.msg import Odometry
    from std_msgs.msg import String
    listener = Listener(truth_topic=None)
    talker = Node('tc_talker', namespace='/tc')
    executor = SingleThreadedExecutor()
    executor.add_node(talker)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    pub = talker.create_publisher(String, 'changing', 10)
    current = {'pub': pub, 'msg': String(data='hello')}

    lock = threading.Lock()

    def tick():
        with lock:
            current['pub'].publish(current['msg'])
    talker.create_timer(0.02, tick)
    env_path = os.environ.get('PYTHONPATH', '')
    hide = _hide_nav_msgs(tmp_path)
    os.environ['PYTHONPATH'] = f'{hide}{os.pathsep}{env_path}' if env_path else hide
    try:
        ros_process('liquid_edge_ros_monitor.topics.node', '--ros-args',
                    '-p', 'metrics_port:=-1', '-p', 'discovery.include:=["/tc/.*"]',
                    '-p', 'discovery.period:=0.2', '-p', 'update_period:=0.2',
                    '-p', 'diagnostic_updater.period:=0.2')
    finally:
        os.environ['PYTHONPATH'] = env_path
    name = '/tc/changing'
    other = None
    try:
        wait_for(lambda: listener.values(name).get('rate (Hz)', 'unknown') != 'unknown', 30,
                 '/tc/changing measured as a String topic')
        # One participant cannot hold two types on a topic, and it may not have let go of String
        # yet when the new publisher comes: the Odometry one lives in a context of its own.
        other = rclpy.Context()
        rclpy.init(context=other)
        talker2 = Node('tc_talker2', namespace='/tc', context=other)
        with lock:
            talker.destroy_publisher(pub)
            current['msg'] = Odometry()
            current['pub'] = talker2.create_publisher(Odometry, 'changing', 10)
        # For a moment the graph may hold both types (another WARN): wait for this one.
        wait_for(lambda: (lambda s: s and s.level == DiagnosticStatus.WARN
                          and "type 'nav_msgs/msg/Odometry' cannot be imported" in s.message)(
            listener.status(name)), 20, "WARN on /tc/changing: type cannot be imported")
        # Ten discovery periods later it still says so (the old code cleared it after one).
        deadline = time.monotonic() + 2.0
        seen = set()
        while time.monotonic() < deadline:
            st = listener.status(name)
            seen.add((st.level, st.message))
            time.sleep(0.05)     # sampling the status for 2 s, not waiting for an event
        assert {lvl for lvl, _ in seen} == {DiagnosticStatus.WARN}, seen
    finally:
        executor.shutdown(timeout_sec=2)
        talker.destroy_node()
        if other is not None:
            talker2.destroy_node()
            rclpy.shutdown(context=other)
        listener.close()


class SimClock:
    """/clock at `speed` times wall speed from 1,000 s, from its own node and executor thread, so
    the test's other work does not delay it."""

    def __init__(self, name: str, speed: float) -> None:
        from rosgraph_msgs.msg import Clock as ClockMsg
        self.node = Node(name)
        pub = self.node.create_publisher(ClockMsg, '/clock', 10)
        start = time.time_ns()

        def tick() -> None:
            msg = ClockMsg()
            now = 1_000 * 1_000_000_000 + int(speed * (time.time_ns() - start))
            msg.clock.sec, msg.clock.nanosec = divmod(now, 1_000_000_000)
            pub.publish(msg)
        self.node.create_timer(0.002, tick)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2)
        self.thread.join(5)
        self.node.destroy_node()


def start_sim_odom(ros_process, ns: str) -> None:
    """sim_robot on sim time in `ns`, publishing only odom at 50 Hz (of wall time)."""
    ros_process('liquid_edge_ros_monitor.sim_robot', '--ros-args', '-r', f'__ns:={ns}',
                '-p', 'use_sim_time:=true', '-p', 'odom.rate:=50.0',
                '-p', 'imu.enabled:=false', '-p', 'scan.enabled:=false',
                '-p', 'camera.enabled:=false', '-p', 'chatter.enabled:=false')


def test_sim_time_rates_and_latency_follow_the_clock(ros, ros_process, tmp_path):
    """With use_sim_time, arrival is read from /clock: at 2x sim speed, a topic sent 50 times per
    wall second arrives 25 times per simulated second, with a small simulated latency."""
    listener = Listener(truth_topic=None)
    clock = SimClock('test_clock', 2.0)
    try:
        start_sim_odom(ros_process, '/st')
        params = tmp_path / 'monitor.yaml'
        params.write_text(yaml.safe_dump({'/**/topic_monitor': {'ros__parameters': {
            'use_sim_time': True, 'window': 6.0, 'update_period': 0.25, 'metrics_port': -1,
            'diagnostic_updater': {'period': 0.25}, 'discovery': {'enabled': False},
            'topics': ['odom'], 'topic': {'odom': {'name': '/st/odom', 'expected_rate': 25.0}}}}}))
        ros_process('liquid_edge_ros_monitor.topics.node', '--ros-args',
                    '--params-file', str(params))
        def full_window():
            v = listener.values('/st/odom')
            return v if v and int(v.get('messages in window', 0)) >= 140 else None
        readings = []
        for _ in range(5):   # several reports, since a Python /clock source jitters under load
            v = wait_for(lambda: (lambda v: v if v and v not in readings else None)(
                full_window()), 30, 'a full simulated window on /st/odom')
            readings.append(v)
        rates = sorted(float(v['rate (Hz)']) for v in readings)
        # 25 Hz of simulated time, clearly not the 50 Hz of wall time.
        assert rates[2] == pytest.approx(25.0, rel=0.1), rates
        assert 0.0 <= float(readings[-1]['latency p50 (ms)']) < 30.0, readings[-1]
        # sim_robot stamps 0 until its first /clock, which the monitor rightly flags; once the
        # window has slid past those, the topic is OK.
        wait_for(lambda: listener.level('/st/odom') == DiagnosticStatus.OK[0], 15,
                 '/st/odom OK once zero stamps left the window',
                 last=lambda: (lambda s: s and (s.level, s.message))(listener.status('/st/odom')))
        # The diagnostics themselves are stamped with simulated time.
        assert listener.names() and listener.last_stamp_sec >= 1_000
    finally:
        clock.close()
        listener.close()


def test_sim_time_ten_times_faster_does_not_make_topics_flap_stale(ros, ros_process, tmp_path):
    """/clock at 10x wall speed and the default update_period (1 s of steady clock between
    reports, 10 s of simulated time): the stall check measures in the steady clock, so the
    topic never reads 'statistics stalled'."""
    listener = Listener(truth_topic=None)
    clock = SimClock('test_clock10', 10.0)
    try:
        start_sim_odom(ros_process, '/st10')
        params = tmp_path / 'monitor.yaml'
        params.write_text(yaml.safe_dump({'/**/topic_monitor': {'ros__parameters': {
            'use_sim_time': True, 'window': 20.0, 'update_period': 1.0, 'metrics_port': -1,
            'diagnostic_updater': {'period': 1.0}, 'discovery': {'enabled': False},
            'topics': ['odom'],
            'topic': {'odom': {'name': '/st10/odom', 'expected_rate': 0.0, 'stale_timeout': 0.0}}}}}))
        ros_process('liquid_edge_ros_monitor.topics.node', '--ros-args',
                    '--params-file', str(params))
        wait_for(lambda: listener.values('/st10/odom').get('rate (Hz)', 'unknown') != 'unknown',
                 30, 'a first rate on /st10/odom')
        seen = []
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:      # sampling the status: 5 s wall, 50 s simulated
            s = listener.status('/st10/odom')
            seen.append((s.level, s.message))
            time.sleep(0.05)
        stalled = [m for _, m in seen if 'stalled' in m]
        assert not stalled, stalled[:3]
    finally:
        clock.close()
        listener.close()


@pytest.mark.parametrize('thread', ['statistics', 'receiver'])
def test_a_dead_monitor_thread_shows_in_the_metrics_and_diagnostics(ros, ros_process, capfd,
                                                                    thread):
    """Fault injection: one of the monitor's threads raises. /diagnostics: every topic STALE
    naming the thread; metrics: liquid_edge_monitor_up 0, every status 3, no rate gauges (not the
    last values, frozen); the death is logged through the node's logger."""
    from rclpy.parameter import Parameter

    from conftest import free_port
    from liquid_edge_ros_monitor.topics.node import TopicMonitor
    from ros_helpers import sample_value, samples, scrape
    ns = f'/dead_{thread}'
    ros_process('liquid_edge_ros_monitor.sim_robot', '--ros-args', '-r', f'__ns:={ns}',
                '-p', 'imu.enabled:=false', '-p', 'scan.enabled:=false',
                '-p', 'camera.enabled:=false', '-p', 'odom.rate:=50.0')
    port = free_port()
    listener = Listener(truth_topic=None)
    node = TopicMonitor(namespace=ns, parameter_overrides=[
        Parameter('metrics_port', value=port), Parameter('update_period', value=0.2),
        Parameter('diagnostic_updater.period', value=0.2),
        Parameter('discovery.include', value=[f'{ns}/(odom|chatter)'])])
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    try:
        wait_for(lambda: sample_value(scrape(port), 'liquid_edge_topic_rate_hz',
                                      topic=f'{ns}/odom'), 30, 'a rate on odom')
        assert sample_value(scrape(port), 'liquid_edge_monitor_up') == 1

        def boom(*_args):
            raise RuntimeError('injected failure')
        if thread == 'statistics':
            node._stats_queue.put(('not', 'a', 'tick'))     # the loop's own unpacking raises
        else:
            node._receiver._entries = boom                   # the loop's set-up raises
            node._receiver.remove(node._receiver.group)      # marks the set changed, wakes it
        text = wait_for(lambda: (lambda t: t if sample_value(t, 'liquid_edge_monitor_up') == 0
                                 else None)(scrape(port)), 10, 'liquid_edge_monitor_up 0')
        statuses = {dict(labels)['topic']: v for (name, labels), v in samples(text).items()
                    if name == 'liquid_edge_topic_status'}
        assert statuses and set(statuses.values()) == {3.0}, statuses
        assert 'liquid_edge_topic_rate_hz{' not in text
        assert sample_value(text, 'liquid_edge_topic_messages_total', topic=f'{ns}/odom') > 0
        # Level and message from one status: another monitor in the domain (any `topic_monitor`
        # node) publishes under the same status name, so read them together until ours comes.
        wait_for(lambda: listener.level(f'{ns}/odom') == DiagnosticStatus.STALE[0]
                 and listener.message(f'{ns}/odom').startswith(f'{thread} thread died ('), 10,
                 'odom STALE on /diagnostics, naming the dead thread')
        err = capfd.readouterr().err
        assert f'{thread} thread died' in err and 'liquid_edge_monitor_up is 0' in err
    finally:
        executor.shutdown(timeout_sec=2)
        node.destroy_node()
        listener.close()


def test_the_handler_times_arrivals_on_the_steady_clock_across_a_wall_clock_step(ros, monkeypatch):
    """Fault injection: the wall clock (time.time_ns, and with it the DDS reception stamps the
    handler is given) steps back 10 s in the middle of a 1 kHz stream. The rate still reads
    1 kHz: arrivals are steady-clock times, the window stays sorted."""
    import numpy as np
    from rclpy.parameter import Parameter

    from liquid_edge_ros_monitor.topics.node import TopicMonitor
    from liquid_edge_ros_monitor.topics.stats import TopicWindow
    real = time.time_ns
    step = [0]
    monkeypatch.setattr(time, 'time_ns', lambda: real() - step[0])
    node = TopicMonitor(namespace='/wallstep', parameter_overrides=[
        Parameter('metrics_port', value=-1), Parameter('discovery.enabled', value=False)])
    try:
        window = TopicWindow(5.0, 10_000, has_header=False)
        handler = node._make_handler(window, False)
        t0 = time.monotonic()
        for i in range(600):
            if i == 300:
                step[0] = 10 * 1_000_000_000
            wall = time.time_ns()
            handler(b'x' * 10, {'received_timestamp': wall, 'source_timestamp': wall - 50_000,
                                'publication_sequence_number': i + 1})
            while time.monotonic() < t0 + (i + 1) * 0.001:   # pace at 1 kHz (this is the load)
                pass
        pending = window.detach()
        arrivals = np.frombuffer(pending, dtype=np.int64).reshape(600, -1)[:, 0]
        assert (np.diff(arrivals) >= 0).all()      # wall stamps as arrivals: 10 s back at 300
        s = window.snapshot(int(arrivals[-1]) + 1_000_000, single_publisher=True, pending=pending)
        assert s.window_messages == 600 and s.rate_hz == pytest.approx(1000.0, rel=0.1)
    finally:
        node.destroy_node()


@pytest.mark.parametrize('unknown', [0, 2**64 - 1])
def test_the_handler_takes_what_other_rmws_report_as_unknown(ros, unknown):
    """rmw_cyclonedds_cpp reports the publication sequence number as UINT64_MAX, other rmws 0,
    and a missing timestamp as 0: a message is still counted, no drop is made of the
    'gaps' between such numbers, and no transport latency of an unknown stamp."""
    import numpy as np
    from rclpy.parameter import Parameter

    from liquid_edge_ros_monitor.topics.node import TopicMonitor
    from liquid_edge_ros_monitor.topics.stats import TopicWindow
    node = TopicMonitor(namespace='/sentinel', parameter_overrides=[
        Parameter('metrics_port', value=-1), Parameter('discovery.enabled', value=False)])
    try:
        window = TopicWindow(5.0, 1000, has_header=False)
        handler = node._make_handler(window, False)
        for i in range(50):
            wall = time.time_ns()
            handler(b'x' * 10, {'received_timestamp': wall if i % 2 else unknown,
                                'source_timestamp': unknown,
                                'publication_sequence_number': unknown})
        pending = window.detach()
        last = int(np.frombuffer(pending, dtype=np.int64).reshape(50, -1)[-1, 0])
        s = window.snapshot(last + 1_000_000, single_publisher=True, pending=pending)
        assert s.window_messages == 50 and s.messages_total == 50
        assert s.dropped_total == 0 and s.transport_latency is None
    finally:
        node.destroy_node()


def test_counters_never_go_back_when_a_topic_changes_type(ros, ros_process):
    """/tc10/x goes from String to Int32 (both importable): the monitor makes a new window for
    the new type; liquid_edge_topic_messages_total goes on from where it was."""
    from std_msgs.msg import String

    from conftest import free_port
    from ros_helpers import sample_value, scrape
    talker = Node('tc10_talker', namespace='/tc10')
    executor = SingleThreadedExecutor()
    executor.add_node(talker)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    lock = threading.Lock()
    pub = talker.create_publisher(String, 'x', 10)
    current = {'pub': pub, 'msg': String(data='hello')}

    def tick():
        with lock:
            if current['pub'] is not None:
                current['pub'].publish(current['msg'])
    talker.create_timer(0.01, tick)
    int32 = None
    port = free_port()
    ros_process('liquid_edge_ros_monitor.topics.node', '--ros-args', '-r', '__node:=tc10_monitor',
                '-p', f'metrics_port:={port}', '-p', 'discovery.include:=["/tc10/.*"]',
                '-p', 'discovery.period:=0.2', '-p', 'update_period:=0.2')

    def messages():
        try:
            return sample_value(scrape(port), 'liquid_edge_topic_messages_total', topic='/tc10/x')
        except OSError:
            return None
    try:
        wait_for(lambda: (messages() or 0) > 50, 30, '50 String messages counted')
        with lock:
            talker.destroy_publisher(pub)
            current['pub'] = None
        # From another process: one DDS participant keeps a topic's first type for a while.
        int32 = subprocess.Popen([sys.executable, '-c', INT32_TALKER], env=os.environ.copy())
        seen = [messages()]

        def int32_counted():
            text = scrape(port)
            seen.append(sample_value(text, 'liquid_edge_topic_messages_total', topic='/tc10/x'))
            return sample_value(text, 'liquid_edge_topic_info', topic='/tc10/x',
                                type='std_msgs/msg/Int32') and seen[-1] > seen[0] + 20
        wait_for(int32_counted, 30, 'Int32 messages counted on')
        assert all(b >= a for a, b in zip(seen, seen[1:])), seen
    finally:
        if int32 is not None:
            int32.terminate()
            int32.wait(10)
        executor.shutdown(timeout_sec=2)
        talker.destroy_node()


INT32_TALKER = """
import rclpy
from rclpy.executors import ExternalShutdownException
from std_msgs.msg import Int32
rclpy.init()
node = rclpy.create_node('tc10_int32', namespace='/tc10')
pub = node.create_publisher(Int32, 'x', 10)
node.create_timer(0.01, lambda: pub.publish(Int32(data=7)))
try:
    rclpy.spin(node)
except (KeyboardInterrupt, ExternalShutdownException):
    pass
"""


def test_the_monitors_own_overflow_is_not_counted_as_the_topics_drops(ros, ros_process):
    """Fault injection: the receiver thread stalls 300 ms once (as under a CPU spike) while a
    healthy 1 kHz reliable IMU runs: the monitor's reader queue (depth 100) overwrites ~200
    messages. They are counted as the monitor's own loss, not as drops of the topic."""
    from rclpy.parameter import Parameter

    from conftest import free_port
    from liquid_edge_ros_monitor.topics.node import TopicMonitor
    from ros_helpers import sample_value, scrape
    ns = '/ownloss'
    ros_process('liquid_edge_ros_monitor.sim_robot', '--ros-args', '-r', f'__ns:={ns}',
                '-p', 'imu.rate:=1000.0', '-p', 'imu.reliability:=reliable',
                '-p', 'odom.enabled:=false', '-p', 'scan.enabled:=false',
                '-p', 'camera.enabled:=false', '-p', 'chatter.enabled:=false')
    port = free_port()
    node = TopicMonitor(namespace=ns, parameter_overrides=[
        Parameter('metrics_port', value=port), Parameter('update_period', value=0.2),
        Parameter('discovery.include', value=[f'{ns}/imu/data'])])
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    topic = f'{ns}/imu/data'

    def value(name):
        return sample_value(scrape(port), name, topic=topic)
    try:
        wait_for(lambda: (value('liquid_edge_topic_messages_total') or 0) > 2000, 30,
                 '2 s of IMU measured')
        dropped0 = value('liquid_edge_topic_dropped_messages_total')
        tick = node._receiver._on_tick
        stalled = threading.Event()

        def stall_once():
            if not stalled.is_set():
                stalled.set()
                time.sleep(0.3)          # the fault: the receiver thread does not take for 300 ms
            tick()
        node._receiver._on_tick = stall_once
        wait_for(stalled.is_set, 5, 'the stall')
        total0 = value('liquid_edge_topic_messages_total')
        wait_for(lambda: value('liquid_edge_topic_messages_total') > total0 + 1000, 10,
                 'a second of messages after the stall, counted')
        assert value('liquid_edge_topic_dropped_messages_total') == dropped0
        assert value('liquid_edge_topic_monitor_lost_messages_total') >= 100
    finally:
        executor.shutdown(timeout_sec=2)
        node.destroy_node()


def test_beyond_full_refresh_a_qos_change_is_still_seen_in_turn(ros, monkeypatch):
    """With many topics, discovery reads a topic's full publisher info only when its count or
    types change, or in its turn (every REFRESH_ROLL periods). A publisher replaced by a
    best-effort one in one step keeps count and type: the monitor must still resubscribe
    best-effort (a reliable reader hears nothing from it) within its turn."""
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    from liquid_edge_ros_monitor.topics import node as topic_node
    monkeypatch.setattr(topic_node, 'REFRESH_ALL_UP_TO', 0)    # the many-topics path, at once
    monitor = topic_node.TopicMonitor(namespace='/roll', parameter_overrides=[
        Parameter('metrics_port', value=-1), Parameter('discovery.period', value=0.1),
        Parameter('discovery.include', value=['/roll/.*'])])
    talker = Node('roll_talker', namespace='/roll')
    executor = SingleThreadedExecutor()
    executor.add_node(monitor)
    executor.add_node(talker)
    pub = [talker.create_publisher(String, 'flip', QoSProfile(depth=10))]
    flipped = threading.Event()

    def flip() -> None:     # on the executor thread: no discovery runs in between
        talker.destroy_publisher(pub[0])
        pub[0] = talker.create_publisher(String, 'flip', QoSProfile(
            depth=10, reliability=ReliabilityPolicy.BEST_EFFORT))
        flipped.set()

    talker.create_timer(0.02, lambda: pub[0].publish(String(data='x')))
    stop = threading.Event()
    spinner = threading.Thread(target=lambda: [executor.spin_once(timeout_sec=0.05)
                                               for _ in iter(stop.is_set, True)], daemon=True)
    spinner.start()
    try:
        track = wait_for(lambda: monitor._tracks.get('/roll/flip'), 20, 'the topic discovered')
        wait_for(lambda: track.subscription is not None and track.best_effort is False, 20,
                 'a reliable subscription')
        refreshes = []
        real_refresh = monitor._refresh
        monkeypatch.setattr(monitor, '_refresh', lambda t, types: (refreshes.append(t.name),
                                                                   real_refresh(t, types))[1])
        talker.create_timer(0.5, lambda: None if flipped.is_set() else flip())
        assert flipped.wait(10)
        wait_for(lambda: track.best_effort is True, 20,
                 f'a best-effort subscription in its turn (refreshes: {len(refreshes)})')
        assert track.publishers == 1      # (with REFRESH_ROLL at 10**9 this is never seen)
    finally:
        stop.set()
        spinner.join(5)
        executor.shutdown()
        talker.destroy_node()
        monitor.destroy_node()
