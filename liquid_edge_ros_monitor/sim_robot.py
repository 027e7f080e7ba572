"""sim_robot: a simulated robot that publishes realistic sensor topics at exact rates.

It is the ground truth for the topic monitor's tests and demos: every stream has a known rate,
header latency, drop fraction and QoS, and each can be changed at run time through the normal
parameter services (`ros2 param set /sim_robot imu.rate 500.0`) to inject faults.

Streams (topic names are relative, so `-r __ns:=/robot1` works):

=========  ====================  =========================  =======  ============
key        topic                 type                       rate Hz  reliability
=========  ====================  =========================  =======  ============
imu        imu/data              sensor_msgs/Imu            200      best_effort
odom       odom                  nav_msgs/Odometry          50       reliable
scan       scan                  sensor_msgs/LaserScan      10       reliable
camera     camera/image_raw      sensor_msgs/Image          30       reliable
chatter    chatter               std_msgs/String            5        reliable
=========  ====================  =========================  =======  ============

Per-stream parameters `<key>.enabled`, `.paused`, `.rate`, `.stamp_lag`, `.drop_fraction`,
`.reliability`; node-wide `qos_depth` and `seed` (read-only, start-up only). `chatter` has no
header, so `chatter.stamp_lag` is accepted and ignored.

Publishing does not use rcl timers (they skip periods under load): one thread keeps an absolute
deadline per stream and advances it by exactly one period per message, so the long-run mean rate
equals the configured rate.
"""
from __future__ import annotations

import array
import heapq
import math
import random
import struct
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence, Tuple, Union, cast

import numpy as np
import rclpy
import rclpy.logging
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.clock import ROSClock
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.publisher import Publisher
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message
from nav_msgs.msg import Odometry
from sensor_msgs.msg import Image, Imu, LaserScan
from std_msgs.msg import String

NODE_NAME = 'sim_robot'
GRAVITY = 9.80665
RELIABILITIES: Dict[str, ReliabilityPolicy] = {
    'reliable': ReliabilityPolicy.RELIABLE,
    'best_effort': ReliabilityPolicy.BEST_EFFORT,
}
# Numeric limits: (min, max, unit). Enforced by the descriptors' ranges and again in the
# on-set callback. The rate floor is 0.01 Hz rather than "> 0" because a descriptor range is
# inclusive; the ceiling is what one Python publishing thread can hold.
LIMITS: Dict[str, Tuple[float, float, str]] = {
    'rate': (0.01, 10000.0, ' Hz'),
    'stamp_lag': (0.0, 3600.0, ' s'),
    'drop_fraction': (0.0, 1.0, ''),
}
QOS_DEPTH_LIMITS = (1, 1000)
SEED_LIMITS = (0, 2**31 - 1)

Message = Union[Any, bytes]  # a ROS message object, or its serialised CDR bytes


class MessageFactory(Protocol):
    """Builds a stream's next message for a given header stamp, reusing one object."""

    def make(self, stamp_ns: int) -> Message:
        ...


@dataclass(frozen=True)
class StreamSpec:
    """What a stream is by default; the parameters start from these values."""

    key: str
    topic: str
    msg_type: type
    rate: float
    reliability: str
    has_header: bool = True


SPECS: Tuple[StreamSpec, ...] = (
    StreamSpec('imu', 'imu/data', Imu, 200.0, 'best_effort'),
    StreamSpec('odom', 'odom', Odometry, 50.0, 'reliable'),
    StreamSpec('scan', 'scan', LaserScan, 10.0, 'reliable'),
    StreamSpec('camera', 'camera/image_raw', Image, 30.0, 'reliable'),
    StreamSpec('chatter', 'chatter', String, 5.0, 'reliable', has_header=False),
)


def check_parameter(name: str, value: Any) -> Optional[str]:
    """Return a one-line reason why `value` is invalid for parameter `name`, or None if valid.

    Shared by the on-set callback and start-up, so both say the same thing.
    """
    field = name.rpartition('.')[2]
    if field in LIMITS and isinstance(value, float):
        lo, hi, unit = LIMITS[field]
        if not lo <= value <= hi:  # also rejects NaN
            return f'{name} must be in [{lo:g}, {hi:g}]{unit}, got {value!r}'
    elif field == 'reliability' and isinstance(value, str):
        if value not in RELIABILITIES:
            return f"{name} must be one of 'reliable', 'best_effort', got {value!r}"
    elif name == 'qos_depth' and isinstance(value, int):
        if not QOS_DEPTH_LIMITS[0] <= value <= QOS_DEPTH_LIMITS[1]:
            return (f'qos_depth must be in [{QOS_DEPTH_LIMITS[0]}, {QOS_DEPTH_LIMITS[1]}], '
                    f'got {value!r}')
    elif name == 'seed' and isinstance(value, int):
        if not SEED_LIMITS[0] <= value <= SEED_LIMITS[1]:
            return f'seed must be in [{SEED_LIMITS[0]}, {SEED_LIMITS[1]}], got {value!r}'
    return None


def set_stamp(stamp: Any, stamp_ns: int) -> None:
    """Write nanoseconds into a builtin_interfaces/Time in place (no Time object per message)."""
    stamp.sec, stamp.nanosec = divmod(stamp_ns, 1_000_000_000)


def yaw_quaternion(q: Any, yaw: float) -> None:
    """Set a geometry_msgs/Quaternion in place to a rotation of `yaw` about z."""
    q.x = 0.0
    q.y = 0.0
    q.z = math.sin(0.5 * yaw)
    q.w = math.cos(0.5 * yaw)


def diagonal(values: Sequence[float], n: int) -> array.array:
    """A row-major n x n covariance with `values` on the diagonal, as ROS messages want it."""
    out = array.array('d', [0.0] * (n * n))
    for i, v in enumerate(values):
        out[i * n + i] = v
    return out


class CircleMotion:
    """Ground truth every sensor agrees on: constant twist, so the pose is its exact integral.

    Starting at the origin heading +x, the robot drives a circle of radius v / w around
    (0, v / w). Time is the stamp's clock relative to start-up, so use_sim_time works.
    """

    def __init__(self, start_ns: int, speed: float = 0.3, yaw_rate: float = 0.2) -> None:
        self.start_ns = start_ns
        self.speed = speed
        self.yaw_rate = yaw_rate
        self.radius = speed / yaw_rate

    def pose(self, stamp_ns: int) -> Tuple[float, float, float]:
        """(x, y, yaw) in the odom frame at `stamp_ns`."""
        yaw = self.yaw_rate * (stamp_ns - self.start_ns) * 1e-9
        return (self.radius * math.sin(yaw), self.radius * (1.0 - math.cos(yaw)), yaw)


@dataclass(frozen=True)
class Room:
    """An axis-aligned rectangular room around the robot's circle, for the laser to hit."""

    x_min: float = -4.0
    x_max: float = 4.0
    y_min: float = -1.5
    y_max: float = 4.5


class ImuFactory:
    """Imu at rest on a turning robot: gravity on z, centripetal accel on y, yaw rate on z."""

    ACCEL_SIGMA = 0.02    # m/s^2
    GYRO_SIGMA = 0.003    # rad/s
    YAW_SIGMA = 0.01      # rad

    def __init__(self, motion: CircleMotion, rng: random.Random) -> None:
        self._motion = motion
        self._gauss = rng.gauss
        self._msg = Imu()
        self._msg.header.frame_id = 'imu_link'
        self._msg.orientation_covariance = diagonal([1e-6, 1e-6, self.YAW_SIGMA ** 2], 3)
        self._msg.angular_velocity_covariance = diagonal([self.GYRO_SIGMA ** 2] * 3, 3)
        self._msg.linear_acceleration_covariance = diagonal([self.ACCEL_SIGMA ** 2] * 3, 3)
        self._centripetal = motion.speed * motion.yaw_rate

    def make(self, stamp_ns: int) -> Imu:
        msg, g = self._msg, self._gauss
        set_stamp(msg.header.stamp, stamp_ns)
        yaw = self._motion.pose(stamp_ns)[2]
        yaw_quaternion(msg.orientation, yaw + g(0.0, self.YAW_SIGMA))
        w = msg.angular_velocity
        w.x, w.y, w.z = (g(0.0, self.GYRO_SIGMA), g(0.0, self.GYRO_SIGMA),
                         self._motion.yaw_rate + g(0.0, self.GYRO_SIGMA))
        a = msg.linear_acceleration
        a.x, a.y, a.z = (g(0.0, self.ACCEL_SIGMA), self._centripetal + g(0.0, self.ACCEL_SIGMA),
                         GRAVITY + g(0.0, self.ACCEL_SIGMA))
        return msg


class OdomFactory:
    """Wheel odometry of the circle: exact pose and twist in odom -> base_link."""

    def __init__(self, motion: CircleMotion) -> None:
        self._motion = motion
        self._msg = Odometry()
        self._msg.header.frame_id = 'odom'
        self._msg.child_frame_id = 'base_link'
        self._msg.pose.covariance = diagonal([1e-3, 1e-3, 1e6, 1e6, 1e6, 1e-2], 6)
        self._msg.twist.covariance = diagonal([1e-4, 1e-4, 1e6, 1e6, 1e6, 1e-3], 6)
        self._msg.twist.twist.linear.x = motion.speed
        self._msg.twist.twist.angular.z = motion.yaw_rate

    def make(self, stamp_ns: int) -> Odometry:
        msg = self._msg
        set_stamp(msg.header.stamp, stamp_ns)
        x, y, yaw = self._motion.pose(stamp_ns)
        position = msg.pose.pose.position
        position.x, position.y = x, y
        yaw_quaternion(msg.pose.pose.orientation, yaw)
        return msg


class ScanFactory:
    """A 360-beam planar laser in the room: exact ray-to-wall distances plus range noise."""

    BEAMS = 360
    RANGE_MIN = 0.12
    RANGE_MAX = 12.0
    SIGMA = 0.01  # m

    def __init__(self, motion: CircleMotion, room: Room, rng: np.random.Generator,
                 rate: float) -> None:
        self._motion = motion
        self._room = room
        self._rng = rng
        self._msg = LaserScan()
        self._msg.header.frame_id = 'laser'
        increment = 2.0 * math.pi / self.BEAMS
        self._msg.angle_min = -math.pi
        self._msg.angle_max = math.pi - increment
        self._msg.angle_increment = increment
        self._msg.range_min = self.RANGE_MIN
        self._msg.range_max = self.RANGE_MAX
        self._msg.intensities = array.array('f', [100.0] * self.BEAMS)
        self._beams = -math.pi + increment * np.arange(self.BEAMS)
        self.set_rate(rate)

    def set_rate(self, rate: float) -> None:
        """scan_time and time_increment follow the configured rate, like a real driver's."""
        self._msg.scan_time = 1.0 / rate
        self._msg.time_increment = 1.0 / rate / self.BEAMS

    def make(self, stamp_ns: int) -> LaserScan:
        msg, room = self._msg, self._room
        set_stamp(msg.header.stamp, stamp_ns)
        x, y, yaw = self._motion.pose(stamp_ns)
        angles = self._beams + yaw
        dx, dy = np.cos(angles), np.sin(angles)
        with np.errstate(divide='ignore', invalid='ignore'):
            tx = np.where(dx > 0, (room.x_max - x) / dx, (room.x_min - x) / dx)
            ty = np.where(dy > 0, (room.y_max - y) / dy, (room.y_min - y) / dy)
        tx[~np.isfinite(tx) | (tx < 0)] = np.inf
        ty[~np.isfinite(ty) | (ty < 0)] = np.inf
        ranges = np.minimum(tx, ty) + self._rng.normal(0.0, self.SIGMA, self.BEAMS)
        np.clip(ranges, self.RANGE_MIN, self.RANGE_MAX, out=ranges)
        msg.ranges = array.array('f', ranges.astype(np.float32).tobytes())
        return msg


class CameraFactory:
    """A 640x480 rgb8 gradient, serialised once; each frame only rewrites the stamp bytes.

    Converting 921,600 bytes from Python to C per frame would cost far more than the publish;
    the CDR layout puts header.stamp (int32 sec, uint32 nanosec) right after the 4-byte
    encapsulation header, so patching 8 bytes in a copy of the buffer is enough.
    """

    WIDTH = 640
    HEIGHT = 480

    def __init__(self) -> None:
        msg = Image()
        msg.header.frame_id = 'camera_optical'
        msg.height, msg.width = self.HEIGHT, self.WIDTH
        msg.encoding = 'rgb8'
        msg.is_bigendian = 0
        msg.step = 3 * self.WIDTH
        pixels = np.empty((self.HEIGHT, self.WIDTH, 3), dtype=np.uint8)
        pixels[:, :, 0] = np.linspace(0, 255, self.WIDTH, dtype=np.uint8)[None, :]
        pixels[:, :, 1] = np.linspace(0, 255, self.HEIGHT, dtype=np.uint8)[:, None]
        pixels[:, :, 2] = 128
        msg.data = array.array('B', pixels.tobytes())
        self._buffer = bytearray(serialize_message(msg))
        self._stamp = struct.Struct('<iI' if self._buffer[1] & 1 else '>iI')

    def make(self, stamp_ns: int) -> bytes:
        sec, nanosec = divmod(stamp_ns, 1_000_000_000)
        self._stamp.pack_into(self._buffer, 4, sec, nanosec)
        return bytes(self._buffer)


class ChatterFactory:
    """A headerless std_msgs/String, so the monitor's headerless path has something to measure."""

    def __init__(self) -> None:
        self._msg = String()
        self._count = 0

    def make(self, stamp_ns: int) -> String:
        self._count += 1
        self._msg.data = f'hello from sim_robot #{self._count}'
        return self._msg


class Stream:
    """One topic: its live settings, its publisher and its counters.

    Settings are written by the executor thread (parameter callbacks) and read by the
    publishing thread; `lock` guards the publisher so a message is never published on a
    publisher that is being destroyed or re-created.
    """

    def __init__(self, node: Node, spec: StreamSpec, factory: MessageFactory, qos_depth: int,
                 seed: int) -> None:
        self.spec = spec
        self._node = node
        self._clock = cast(ROSClock, node.get_clock())   # typed Clock, a ROSClock at run time
        self._factory = factory
        self._qos_depth = qos_depth
        self._drop_rng = random.Random(f'{seed}:{spec.key}:drop')
        self.lock = threading.Lock()
        self._publisher: Optional[Publisher] = None
        self.enabled = True
        self.paused = False
        self.rate = spec.rate
        self.period = 1.0 / spec.rate
        self.stamp_lag_ns = 0
        self.drop_fraction = 0.0
        self.reliability = spec.reliability
        self.generation = 0  # bumped (under the scheduler's lock) to re-anchor or unschedule
        self.published = 0
        self.dropped = 0
        self.resyncs = 0

    @property
    def active(self) -> bool:
        """Whether the scheduler should wake up for this stream at all."""
        return self.enabled and not self.paused

    def qos(self) -> QoSProfile:
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self._qos_depth,
                          reliability=RELIABILITIES[self.reliability],
                          durability=DurabilityPolicy.VOLATILE)

    def open(self) -> None:
        """Create the publisher (topic appears in the graph) if it does not exist."""
        with self.lock:
            if self._publisher is None:
                self._publisher = self._node.create_publisher(
                    self.spec.msg_type, self.spec.topic, self.qos())

    def close(self) -> None:
        """Destroy the publisher (topic vanishes from the graph) if it exists."""
        with self.lock:
            if self._publisher is not None:
                self._node.destroy_publisher(self._publisher)
                self._publisher = None

    def configure(self, field: str, value: Any) -> None:
        """Apply one validated parameter change (executor thread)."""
        if field == 'enabled':
            self.enabled = value
            if value:
                self.open()
            else:
                self.close()
        elif field == 'paused':
            self.paused = value
        elif field == 'rate':
            self.rate = value
            self.period = 1.0 / value
            set_rate = getattr(self._factory, 'set_rate', None)
            if set_rate is not None:
                set_rate(value)
        elif field == 'stamp_lag':
            self.stamp_lag_ns = int(round(value * 1e9))
        elif field == 'drop_fraction':
            self.drop_fraction = value
        elif field == 'reliability' and value != self.reliability:
            self.reliability = value
            if self.enabled:
                self.close()
                self.open()

    def fire(self) -> None:
        """One scheduled slot (publishing thread): publish, or count it as dropped."""
        if self.paused:
            return
        if self.drop_fraction > 0.0 and self._drop_rng.random() < self.drop_fraction:
            self.dropped += 1
            return
        stamp_ns = max(0, self._now_ns() - self.stamp_lag_ns)
        message = self._factory.make(stamp_ns)
        with self.lock:
            if self._publisher is not None:
                self._publisher.publish(message)
                self.published += 1

    def _now_ns(self) -> int:
        """The node clock's time. Without sim time that is the system clock, and time.time_ns()
        reads it without building an rclpy Time per message."""
        if self._clock.ros_time_is_active:
            return self._clock.now().nanoseconds
        return time.time_ns()

    def describe(self) -> str:
        if not self.enabled:
            return f'{self.spec.topic} (disabled)'
        extras = ''.join([' paused' if self.paused else '',
                          f' lag={self.stamp_lag_ns / 1e9:g}s' if self.stamp_lag_ns else '',
                          f' drop={self.drop_fraction:g}' if self.drop_fraction else ''])
        return f'{self.spec.topic} {self.rate:g}Hz {self.reliability}{extras}'


class Scheduler:
    """One thread that publishes every stream on an absolute deadline grid.

    A heap holds (deadline, stream index, generation). After each message the stream's deadline
    advances by exactly one period, so lateness is caught up rather than skipped and the mean
    rate is exact; more than RESYNC_S behind, the grid is re-anchored and counted. A rate,
    enable or pause change bumps the stream's generation, which retires its heap entry.

    Sleeping overshoots by 0.1-0.3 ms, so the thread wakes a little early (by a running estimate
    of the 80th-percentile overshoot, at most MAX_EARLY_S) and spins the rest: precise timing
    for a few percent of a core. It sleeps on a "doorbell" lock, held while nobody rings:
    `acquire(timeout)` is a plain timed sleep that `update()`/`stop()` can cut short with
    `release()`, without the per-wait allocations of threading.Condition/Event.
    """

    RESYNC_S = 1.0
    MAX_EARLY_S = 200e-6
    MARGIN_S = 10e-6
    OVERSHOOT_QUANTILE = 0.8
    QUANTILE_STEP_S = 5e-6

    def __init__(self, streams: Sequence[Stream], on_error: Callable[[Stream, Exception], bool]
                 ) -> None:
        self._streams = list(streams)
        self._on_error = on_error
        self._lock = threading.Lock()  # guards _heap, _stopping and every stream.generation
        self._heap: List[Tuple[float, int, int]] = []
        self._stopping = False
        self._doorbell = threading.Lock()
        self._doorbell.acquire()
        self._overshoot = 100e-6
        self._thread = threading.Thread(target=self._run, name='sim_robot_publisher',
                                        daemon=True)

    def start(self) -> None:
        """Schedule the active streams with staggered phases and start the thread.

        The default rates are commensurate (every 100 ms they would all fall due together); a
        phase offset of a fraction of the shortest period apiece keeps one stream's publish from
        systematically delaying another's.
        """
        now = time.monotonic()
        with self._lock:
            active = [(i, s) for i, s in enumerate(self._streams) if s.active]
            step = min((s.period for _, s in active), default=0.0) / max(len(active), 1)
            for rank, (index, stream) in enumerate(active):
                heapq.heappush(self._heap, (now + stream.period + rank * step, index,
                                            stream.generation))
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._stopping = True
        self._ring()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def update(self, stream: Stream) -> None:
        """Re-anchor `stream` one period from now (or unschedule it if inactive)."""
        index = self._streams.index(stream)
        with self._lock:
            stream.generation += 1
            if stream.active:
                heapq.heappush(self._heap, (time.monotonic() + stream.period, index,
                                            stream.generation))
        self._ring()

    def _ring(self) -> None:
        try:
            self._doorbell.release()
        except RuntimeError:  # already rung and not yet answered
            pass

    def _next_due(self) -> Optional[Tuple[float, int, int]]:
        """Block until the earliest live deadline is (almost) due; None when stopping."""
        while True:
            with self._lock:
                if self._stopping:
                    return None
                heap = self._heap
                while heap and heap[0][2] != self._streams[heap[0][1]].generation:
                    heapq.heappop(heap)
                timeout = -1.0  # nothing scheduled: sleep until rung
                if heap:
                    wake_at = heap[0][0] - min(self.MAX_EARLY_S, self._overshoot + self.MARGIN_S)
                    now = time.monotonic()
                    if now >= wake_at:
                        return heapq.heappop(heap)
                    timeout = min(wake_at - now, threading.TIMEOUT_MAX)
            if not self._doorbell.acquire(timeout=timeout) and timeout > 0:
                # A natural wake-up: track the quantile of overshoots (robust to rare stalls).
                below = 1.0 if time.monotonic() - wake_at <= self._overshoot else 0.0
                self._overshoot = max(0.0, self._overshoot + self.QUANTILE_STEP_S
                                      * (self.OVERSHOOT_QUANTILE - below))

    def _run(self) -> None:
        while True:
            due = self._next_due()
            if due is None:
                return
            deadline, index, generation = due
            stream = self._streams[index]
            while time.monotonic() < deadline:
                pass
            try:
                stream.fire()
            except Exception as exc:  # noqa: BLE001 - reported by the node, not fatal
                if not self._on_error(stream, exc):
                    return
            with self._lock:
                if generation != stream.generation:
                    continue
                next_deadline = deadline + stream.period
                now = time.monotonic()
                if now - next_deadline > self.RESYNC_S:
                    next_deadline = now + stream.period
                    stream.resyncs += 1
                heapq.heappush(self._heap, (next_deadline, index, generation))


class SimRobot(Node):
    """The node: declares the parameters, owns the streams and the scheduler."""

    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        self.add_on_set_parameters_callback(self._validate)
        try:
            self._declare_parameters()
        except Exception:
            self.destroy_node()
            raise
        qos_depth = self.get_parameter('qos_depth').value
        seed = self.get_parameter('seed').value
        motion = CircleMotion(self.get_clock().now().nanoseconds)
        factories: Dict[str, MessageFactory] = {
            'imu': ImuFactory(motion, random.Random(f'{seed}:imu:noise')),
            'odom': OdomFactory(motion),
            'scan': ScanFactory(motion, Room(), np.random.default_rng(seed),
                                self.get_parameter('scan.rate').value),
            'camera': CameraFactory(),
            'chatter': ChatterFactory(),
        }
        self._streams: Dict[str, Stream] = {}
        for spec in SPECS:
            stream = Stream(self, spec, factories[spec.key], qos_depth, seed)
            for field in ('reliability', 'rate', 'stamp_lag', 'drop_fraction', 'paused',
                          'enabled'):  # enabled last: the publisher is made once, right
                stream.configure(field, self.get_parameter(f'{spec.key}.{field}').value)
            self._streams[spec.key] = stream
        self._scheduler: Optional[Scheduler] = Scheduler(list(self._streams.values()),
                                                         self._publish_failed)
        self.add_post_set_parameters_callback(self._apply)
        self._scheduler.start()
        self.get_logger().info(
            'publishing ' + '; '.join(s.describe() for s in self._streams.values())
            + f' (QoS keep_last {qos_depth}, volatile)')

    def _declare_parameters(self) -> None:
        """Declare every parameter with a descriptor; overrides are validated here too."""
        self.declare_parameter('qos_depth', 10, ParameterDescriptor(
            description='History depth (KEEP_LAST) of every publisher; start-up only',
            read_only=True, integer_range=[IntegerRange(
                from_value=QOS_DEPTH_LIMITS[0], to_value=QOS_DEPTH_LIMITS[1], step=1)]))
        self.declare_parameter('seed', 0, ParameterDescriptor(
            description='Seed of the sensor-noise and drop_fraction generators; start-up only',
            read_only=True, integer_range=[IntegerRange(
                from_value=SEED_LIMITS[0], to_value=SEED_LIMITS[1], step=1)]))
        for spec in SPECS:
            k = spec.key
            lag_note = (' (ignored: std_msgs/String has no header)' if not spec.has_header
                        else '')
            self.declare_parameter(f'{k}.enabled', True, ParameterDescriptor(
                description=f'Publish {spec.topic}; false destroys the publisher'))
            self.declare_parameter(f'{k}.paused', False, ParameterDescriptor(
                description=f'Keep the {spec.topic} publisher but send nothing'))
            self.declare_parameter(f'{k}.rate', spec.rate, self._float_descriptor(
                'rate', f'Publishing rate of {spec.topic} in Hz'))
            self.declare_parameter(f'{k}.stamp_lag', 0.0, self._float_descriptor(
                'stamp_lag', f'header.stamp = now - stamp_lag, in seconds{lag_note}'))
            self.declare_parameter(f'{k}.drop_fraction', 0.0, self._float_descriptor(
                'drop_fraction', f'Fraction of scheduled {spec.topic} messages skipped'))
            self.declare_parameter(f'{k}.reliability', spec.reliability, ParameterDescriptor(
                description=f'QoS reliability of {spec.topic}; a change re-creates the publisher',
                additional_constraints="one of 'reliable', 'best_effort'"))

    @staticmethod
    def _float_descriptor(field: str, description: str) -> ParameterDescriptor:
        lo, hi, _ = LIMITS[field]
        return ParameterDescriptor(description=description, floating_point_range=[
            FloatingPointRange(from_value=lo, to_value=hi, step=0.0)])

    def _validate(self, parameters: List[Parameter]) -> SetParametersResult:
        """On-set callback: reject invalid values with a one-line reason."""
        for parameter in parameters:
            reason = check_parameter(parameter.name, parameter.value)
            if reason is not None:
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _apply(self, parameters: List[Parameter]) -> None:
        """Post-set callback: act on values that were accepted."""
        for parameter in parameters:
            key, _, field = parameter.name.rpartition('.')
            stream = self._streams.get(key)
            if stream is None:
                continue
            stream.configure(field, parameter.value)
            if field in ('enabled', 'paused', 'rate') and self._scheduler is not None:
                self._scheduler.update(stream)

    def _publish_failed(self, stream: Stream, exc: Exception) -> bool:
        """Publishing-thread errors: quiet at shutdown, throttled otherwise. False = stop."""
        if not self.context.ok():
            return False
        self.get_logger().error(f'publishing {stream.spec.topic} failed: {exc}',
                                throttle_duration_sec=5.0)
        return True

    def counts(self) -> Dict[str, Tuple[int, int, int]]:
        """(published, dropped, resyncs) per stream key."""
        return {k: (s.published, s.dropped, s.resyncs) for k, s in self._streams.items()}

    def destroy_node(self) -> None:
        """Stop the publishing thread before any publisher goes away."""
        scheduler = getattr(self, '_scheduler', None)
        if scheduler is not None:
            scheduler.stop()
            self._scheduler = None
            for stream in self._streams.values():
                stream.close()
            summary = ', '.join(f'{k}={p} (dropped {d}, resyncs {r})'
                                for k, (p, d, r) in self.counts().items())
            # After Ctrl-C the context is already shut down and /rosout cannot take the line:
            # log it under a name that rosout does not forward.
            logger = (self.get_logger() if self.context.ok()
                      else rclpy.logging.get_logger(f'{NODE_NAME}.shutdown'))
            logger.info(f'stopped; published {summary}')
        super().destroy_node()


def _reason(exc: BaseException) -> str:
    """The one-line cause inside rclpy's parameter exception text."""
    text = str(exc)
    if isinstance(exc, InvalidParameterValueException) and 'Reason: ' in text:
        text = text.split('Reason: ', 1)[1].rpartition(': ')[0] or text
    return ' '.join(text.split())


def main(args: Optional[List[str]] = None, stop: Any = None) -> int:
    """Run the node until a stop signal. Returns 0, or 2 for an invalid parameter override."""
    from .core.runner import node_main
    return node_main(NODE_NAME, SimRobot,
                     (InvalidParameterValueException, InvalidParameterTypeException), args,
                     describe=_reason, stop=stop)


if __name__ == '__main__':
    sys.exit(main())
