"""sim_robot against a real rclpy node over Fast DDS: it is the ground truth the monitor is tested
against, so its topics, stamps, rates and run-time fault injection must be what they claim."""
from __future__ import annotations

import statistics
import threading
import time
from typing import Any, Callable, Iterator, List, Tuple

import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter_client import AsyncParameterClient
from rclpy.qos import QoSProfile, ReliabilityPolicy
from nav_msgs.msg import Odometry
from sensor_msgs.msg import Image, Imu, LaserScan
from std_msgs.msg import String

from conftest import wait_for
from ros_helpers import set_parameter
from liquid_edge_ros_monitor.sim_robot import check_parameter

SIM = 'liquid_edge_ros_monitor.sim_robot'
NO_CAMERA = ('-p', 'camera.enabled:=false')
DISCOVERY_S = 20.0
BEST_EFFORT = QoSProfile(depth=1000, reliability=ReliabilityPolicy.BEST_EFFORT)
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
TOPICS = {
    '/imu/data': ('sensor_msgs/msg/Imu', Imu, BEST_EFFORT),
    '/odom': ('nav_msgs/msg/Odometry', Odometry, RELIABLE),
    '/scan': ('sensor_msgs/msg/LaserScan', LaserScan, RELIABLE),
    '/camera/image_raw': ('sensor_msgs/msg/Image', Image, RELIABLE),
    '/chatter': ('std_msgs/msg/String', String, RELIABLE),
}


def stamp_ns(msg: Any) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


class Collector:
    """Everything one subscription received, with the DDS MessageInfo and the arrival time."""

    def __init__(self, node: Node, topic: str, msg_type: type, qos: QoSProfile) -> None:
        self.items: List[Tuple[Any, dict]] = []
        self.last_arrival = 0.0
        self._lock = threading.Lock()
        self.subscription = node.create_subscription(msg_type, topic, self._on_message, qos)

    def _on_message(self, msg: Any, info: dict) -> None:
        with self._lock:
            self.items.append((msg, info))
            self.last_arrival = time.monotonic()

    def snapshot(self) -> List[Tuple[Any, dict]]:
        with self._lock:
            return list(self.items)

    def __len__(self) -> int:
        return len(self.items)


class Probe:
    """A test-side node spun by a SingleThreadedExecutor in a background thread."""

    def __init__(self) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('sim_robot_probe', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def collect(self, topic: str, msg_type: type, qos: QoSProfile) -> Collector:
        return Collector(self.node, topic, msg_type, qos)

    def types(self) -> dict:
        return dict(self.node.get_topic_names_and_types())

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=5.0)
        self._thread.join(5.0)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture
def probe() -> Iterator[Probe]:
    p = Probe()
    yield p
    p.close()


def test_topics_types_content_and_clean_exit(ros_process: Callable, probe: Probe) -> None:
    """All five streams (camera included), with plausible content and fresh stamps."""
    proc = ros_process(SIM, '--ros-args', '-p', 'chatter.rate:=20.0')
    wait_for(lambda: all(probe.types().get(t) == [ty] for t, (ty, _, _) in TOPICS.items()),
             DISCOVERY_S, 'all five sim_robot topics with their types')
    collectors = {t: probe.collect(t, cls, qos) for t, (_, cls, qos) in TOPICS.items()}
    wait_for(lambda: all(len(c) >= 2 for c in collectors.values()), DISCOVERY_S,
             'two messages on every topic')
    probe.node.destroy_subscription(collectors['/camera/image_raw'].subscription)
    now_ns = time.time_ns()

    imu = collectors['/imu/data'].snapshot()[-1][0]
    assert imu.header.frame_id == 'imu_link'
    assert abs(imu.linear_acceleration.z - 9.80665) < 0.2
    assert abs(imu.angular_velocity.z - 0.2) < 0.05
    assert imu.linear_acceleration_covariance[0] > 0.0

    odom = collectors['/odom'].snapshot()[-1][0]
    assert (odom.header.frame_id, odom.child_frame_id) == ('odom', 'base_link')
    assert odom.twist.twist.linear.x > 0.0
    q = odom.pose.pose.orientation
    assert abs(q.x * q.x + q.y * q.y + q.z * q.z + q.w * q.w - 1.0) < 1e-6

    scan = collectors['/scan'].snapshot()[-1][0]
    assert scan.header.frame_id == 'laser' and len(scan.ranges) == 360
    assert all(scan.range_min <= r <= scan.range_max for r in scan.ranges)
    # 8 m x 6 m room, robot on a 1.5 m circle about its centre: walls 1.5 m to 6.5 m away.
    assert 1.4 < min(scan.ranges) and max(scan.ranges) < 6.6

    image = collectors['/camera/image_raw'].snapshot()[-1][0]
    assert (image.width, image.height, image.encoding, image.step) == (640, 480, 'rgb8', 1920)
    assert image.header.frame_id == 'camera_optical' and len(image.data) == 921600

    assert collectors['/chatter'].snapshot()[-1][0].data.startswith('hello from sim_robot')

    for topic in ('/imu/data', '/odom', '/scan', '/camera/image_raw'):
        msg = collectors[topic].snapshot()[-1][0]
        age = (now_ns - stamp_ns(msg)) / 1e9
        assert -0.05 < age < 2.0, f'{topic} stamp is {age:.3f} s old'
    stamps = [stamp_ns(m) for m, _ in collectors['/odom'].snapshot()]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)

    assert proc.stop() == 0
    out = proc.log_path.read_text(errors='replace')  # output() flushes the log stop() closed
    assert 'Traceback' not in out and 'stopped; published imu=' in out


def test_stamp_lag_drop_fraction_and_namespace(ros_process: Callable, probe: Probe) -> None:
    """imu.stamp_lag puts header stamps 20 ms behind receipt; odom (no lag) stays close and
    odom.drop_fraction 0.5 halves its 50 Hz; topic names follow the node's namespace."""
    ros_process(SIM, '--ros-args', '-r', '__ns:=/lagged', *NO_CAMERA,
                '-p', 'imu.stamp_lag:=0.02', '-p', 'odom.drop_fraction:=0.5')
    wait_for(lambda: '/lagged/imu/data' in probe.types(), DISCOVERY_S, '/lagged/imu/data')
    imu = probe.collect('/lagged/imu/data', Imu, BEST_EFFORT)
    odom = probe.collect('/lagged/odom', Odometry, RELIABLE)
    wait_for(lambda: len(imu) >= 100 and len(odom) >= 2, DISCOVERY_S, 'imu and odom messages')
    first = stamp_ns(odom.snapshot()[0][0])
    wait_for(lambda: stamp_ns(odom.snapshot()[-1][0]) - first >= 2_000_000_000, 10.0,
             '2 s of odom')

    def median_lag(c: Collector) -> float:
        return statistics.median((info['received_timestamp'] - stamp_ns(m)) / 1e9
                                 for m, info in c.snapshot())

    assert 0.018 < median_lag(imu) < 0.025
    assert 0.0 <= median_lag(odom) < 0.005
    kept = sum(1 for m, _ in odom.snapshot() if first < stamp_ns(m) <= first + 2_000_000_000)
    assert 30 <= kept <= 70, f'{kept} of 100 scheduled odom messages kept'  # binomial sd 5


def test_use_sim_time_stamps(ros_process: Callable, probe: Probe) -> None:
    """With use_sim_time, header stamps come from /clock."""
    from rosgraph_msgs.msg import Clock
    ros_process(SIM, '--ros-args', *NO_CAMERA, '-p', 'use_sim_time:=true')
    clock_pub = probe.node.create_publisher(Clock, '/clock', 10)
    tick = Clock()
    tick.clock.sec = 1000
    odom = probe.collect('/odom', Odometry, RELIABLE)

    def stamped_from_clock() -> bool:
        clock_pub.publish(tick)
        return any(m.header.stamp.sec == 1000 for m, _ in odom.snapshot())

    wait_for(stamped_from_clock, DISCOVERY_S, 'odom stamped at sim time 1000 s')


def test_imu_rate_1000hz(ros_process: Callable, probe: Probe) -> None:
    """The scheduler holds 1000 Hz: messages stamped in a 3 s window number 3000 +- 2%."""
    ros_process(SIM, '--ros-args', *NO_CAMERA, '-p', 'imu.rate:=1000.0')
    wait_for(lambda: '/imu/data' in probe.types(), DISCOVERY_S, '/imu/data')
    imu = probe.collect('/imu/data', Imu, BEST_EFFORT)
    wait_for(lambda: len(imu) >= 200, DISCOVERY_S, 'imu messages flowing')
    start = stamp_ns(imu.snapshot()[-1][0]) + 100_000_000
    end = start + 3_000_000_000
    wait_for(lambda: stamp_ns(imu.snapshot()[-1][0]) > end + 50_000_000, 10.0,
             '3 s of imu messages')
    count = sum(1 for m, _ in imu.snapshot() if start <= stamp_ns(m) < end)
    rate = count / 3.0
    assert abs(rate - 1000.0) / 1000.0 < 0.02, f'measured {rate:.1f} Hz'


def test_runtime_parameters(ros_process: Callable, probe: Probe) -> None:
    """Faults injected at run time through the parameter services take effect."""
    ros_process(SIM, '--ros-args', *NO_CAMERA, '-p', 'chatter.rate:=50.0')
    client = AsyncParameterClient(probe.node, 'sim_robot')
    wait_for(client.services_are_ready, DISCOVERY_S, 'sim_robot parameter services')
    count = probe.node.count_publishers
    wait_for(lambda: count('/imu/data') == 1, DISCOVERY_S, 'imu publisher')

    assert set_parameter(client, 'imu.enabled', False).successful
    wait_for(lambda: count('/imu/data') == 0, 10.0, 'imu publisher gone')
    assert set_parameter(client, 'imu.enabled', True).successful
    wait_for(lambda: count('/imu/data') == 1, 10.0, 'imu publisher back')

    def odom_reliability() -> List[ReliabilityPolicy]:
        return [i.qos_profile.reliability
                for i in probe.node.get_publishers_info_by_topic('/odom')
                if i.node_name == 'sim_robot']

    wait_for(lambda: odom_reliability() == [ReliabilityPolicy.RELIABLE], DISCOVERY_S,
             'odom reliable')
    assert set_parameter(client, 'odom.reliability', 'best_effort').successful
    wait_for(lambda: odom_reliability() == [ReliabilityPolicy.BEST_EFFORT], 10.0,
             'odom re-created best_effort')

    for name, value in (('imu.rate', -1.0), ('imu.drop_fraction', 1.5),
                        ('odom.reliability', 'sometimes')):
        result = set_parameter(client, name, value)
        assert not result.successful, f'{name}={value!r} was accepted'
        assert name in result.reason and '\n' not in result.reason, result.reason

    chatter = probe.collect('/chatter', String, RELIABLE)
    wait_for(lambda: len(chatter) >= 5, DISCOVERY_S, 'chatter messages')
    assert set_parameter(client, 'chatter.paused', True).successful
    # At 50 Hz, 0.5 s without a message is 25 missed periods.
    wait_for(lambda: time.monotonic() - chatter.last_arrival > 0.5, 5.0, 'chatter to go silent')
    assert count('/chatter') == 1
    paused_at = len(chatter)
    assert set_parameter(client, 'chatter.paused', False).successful
    wait_for(lambda: len(chatter) >= paused_at + 5, 10.0, 'chatter to resume')


def test_invalid_startup_override_exits_2(ros_process: Callable) -> None:
    """A bad override is one line on stderr and exit status 2, not a traceback."""
    proc = ros_process(SIM, '--ros-args', '-p', 'imu.rate:=-3.0')
    wait_for(lambda: proc.proc.poll() is not None, DISCOVERY_S, 'sim_robot to exit')
    out = proc.output()
    assert proc.proc.returncode == 2, out
    # Only our line counts: Fast DDS may log its own (e.g. a busy shared-memory port).
    ours = [line for line in out.splitlines() if line.startswith('sim_robot')]
    assert len(ours) == 1 and ours[0].startswith('sim_robot: error: '), out
    assert 'imu.rate' in ours[0] and 'Traceback' not in out


@pytest.mark.parametrize('name, value, valid', [
    ('imu.rate', 1000.0, True), ('imu.rate', 0.0, False), ('imu.rate', float('nan'), False),
    ('scan.stamp_lag', -0.1, False), ('odom.drop_fraction', 1.0, True),
    ('odom.drop_fraction', 1.01, False), ('camera.reliability', 'best_effort', True),
    ('camera.reliability', 'RELIABLE', False), ('qos_depth', 0, False), ('seed', 7, True),
])
def test_check_parameter(name: str, value: Any, valid: bool) -> None:
    """The reason names the parameter and what is allowed, on one line."""
    reason = check_parameter(name, value)
    assert (reason is None) == valid, reason
    if reason is not None:
        assert reason.startswith(name) and '\n' not in reason
