"""CDR header parsing on real serialized messages and on truncated / garbage buffers."""
import struct

import pytest
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Imu
from std_msgs.msg import Header

from liquid_edge_ros_monitor.topics.cdr import CdrError, header_frame_id, header_stamp, header_stamp_ns


def _imu(sec: int, nanosec: int, frame: str = 'imu_link') -> bytes:
    m = Imu()
    m.header.stamp.sec, m.header.stamp.nanosec, m.header.frame_id = sec, nanosec, frame
    return serialize_message(m)


def test_reads_stamp_and_frame_of_a_real_message():
    buf = _imu(1_700_000_000, 123_456_789)
    assert header_stamp(buf) == (1_700_000_000, 123_456_789)
    assert header_stamp_ns(buf) == 1_700_000_000_123_456_789
    assert header_frame_id(buf) == 'imu_link'


def test_negative_seconds_and_empty_frame():
    buf = serialize_message(Header(frame_id=''))
    assert header_stamp(buf) == (0, 0)
    assert header_frame_id(buf) == ''
    h = Header()
    h.stamp.sec = -5
    assert header_stamp(serialize_message(h)) == (-5, 0)


def test_big_endian_and_xcdr2_encodings():
    payload = struct.pack('>iI', 42, 7) + struct.pack('>I', 2) + b'a\x00'
    assert header_stamp(b'\x00\x00\x00\x00' + payload) == (42, 7)
    assert header_frame_id(b'\x00\x00\x00\x00' + payload) == 'a'
    le = struct.pack('<iI', 42, 7)
    assert header_stamp(b'\x00\x07\x00\x00' + le) == (42, 7)              # CDR2_LE
    assert header_stamp(b'\x00\x09\x00\x00' + b'\x10\x00\x00\x00' + le) == (42, 7)  # D_CDR2_LE


@pytest.mark.parametrize('buf, reason', [
    (b'', 'shorter than the 4-byte encapsulation header'),
    (b'\x00\x01', 'shorter than the 4-byte encapsulation header'),
    (b'\x00\x01\x00\x00\x01\x02', 'ends before header.stamp'),
    (b'\x00\x03\x00\x00' + b'\x00' * 8, 'unsupported CDR encapsulation 0x0003'),
    (b'\xff\xff\x00\x00' + b'\x00' * 8, 'unsupported CDR encapsulation 0xffff'),
    (b'\x00\x01\x00\x00' + struct.pack('<iI', 1, 2_000_000_000), 'not below 1e9'),
])
def test_truncated_and_garbage_buffers_raise_one_line_errors(buf, reason):
    with pytest.raises(CdrError, match=reason) as info:
        header_stamp(buf)
    assert '\n' not in str(info.value)
    assert header_stamp_ns(buf) is None   # the hot-path variant never raises


@pytest.mark.parametrize('tail, reason', [
    (b'', 'ends before header.frame_id length'),
    (struct.pack('<I', 0), 'not a valid string length'),
    (struct.pack('<I', 1 << 30), 'not a valid string length'),
    (struct.pack('<I', 10) + b'abc', 'runs past'),
    (struct.pack('<I', 3) + b'abc', 'not NUL-terminated'),
    (struct.pack('<I', 3) + b'\xff\xfe\x00', 'not UTF-8'),
])
def test_bad_frame_ids(tail, reason):
    buf = b'\x00\x01\x00\x00' + struct.pack('<iI', 1, 2) + tail
    with pytest.raises(CdrError, match=reason):
        header_frame_id(buf)


def test_every_truncation_of_a_real_message_is_handled():
    buf = _imu(12, 34, 'base_link')
    for n in range(len(buf)):
        stamp = header_stamp_ns(buf[:n])
        assert stamp is None if n < 12 else stamp == 12_000_000_034
