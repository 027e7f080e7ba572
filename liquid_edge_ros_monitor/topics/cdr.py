"""Read `std_msgs/Header` fields straight from serialized (CDR) message bytes.

The topic monitor subscribes with ``raw=True`` so that it never deserialises a message on the hot
path. For types whose first field is a ``std_msgs/Header`` the stamp sits at a fixed place right after
the encapsulation header, so reading it costs one ``struct.unpack_from``:

    bytes 0-1  encapsulation kind (big-endian u16; odd = little-endian payload)
    bytes 2-3  options
    bytes 4-7  header.stamp.sec      (int32)
    bytes 8-11 header.stamp.nanosec  (uint32)
    bytes 12-15 header.frame_id length, including the terminating NUL (uint32)
    bytes 16-  header.frame_id characters

XCDR2 "delimited" encodings put a 4-byte DHEADER before the struct, shifting everything by 4.
Parameter-list encodings (PL_CDR*) carry no fixed layout and are not parsed.
"""
from __future__ import annotations

import struct
from typing import Optional, Tuple

# Encapsulation kinds (OMG DDS-XTypes 1.3, 7.6.3.1.2) -> (little endian, payload offset).
_PLAIN_CDR = {0x0000: (False, 4), 0x0001: (True, 4),    # CDR_BE, CDR_LE
              0x0006: (False, 4), 0x0007: (True, 4),    # CDR2_BE, CDR2_LE (final)
              0x0008: (False, 8), 0x0009: (True, 8)}    # D_CDR2_BE, D_CDR2_LE (appendable)

_STAMP_LE = struct.Struct('<iI')
_STAMP_BE = struct.Struct('>iI')
_U32_LE = struct.Struct('<I')
_U32_BE = struct.Struct('>I')

#: The most frame_id bytes we are willing to decode; longer lengths mean a corrupt buffer.
MAX_FRAME_ID_BYTES = 4096


class CdrError(ValueError):
    """The buffer is not a CDR message with a leading std_msgs/Header."""


def _layout(buf: bytes) -> Tuple[bool, int]:
    if len(buf) < 4:
        raise CdrError(f'buffer of {len(buf)} bytes is shorter than the 4-byte encapsulation header')
    kind = (buf[0] << 8) | buf[1]
    try:
        return _PLAIN_CDR[kind]
    except KeyError:
        raise CdrError(f'unsupported CDR encapsulation 0x{kind:04x}') from None


def header_stamp(buf: bytes) -> Tuple[int, int]:
    """Return ``(sec, nanosec)`` of the leading header.stamp, or raise `CdrError`."""
    little, offset = _layout(buf)
    if len(buf) < offset + 8:
        raise CdrError(f'buffer of {len(buf)} bytes ends before header.stamp')
    sec, nanosec = (_STAMP_LE if little else _STAMP_BE).unpack_from(buf, offset)
    if nanosec >= 1_000_000_000:
        raise CdrError(f'header.stamp.nanosec {nanosec} is not below 1e9')
    return sec, nanosec


def header_stamp_ns(buf: bytes) -> Optional[int]:
    """header.stamp in nanoseconds, or None for a buffer that holds no readable stamp.

    This is the hot-path variant of `header_stamp`: one function, no exceptions raised, so one odd
    message can never break a monitor (and a well-formed one costs a dict lookup and one unpack).
    """
    if len(buf) < 12:
        return None
    layout = _PLAIN_CDR.get((buf[0] << 8) | buf[1])
    if layout is None:
        return None
    little, offset = layout
    if len(buf) < offset + 8:
        return None
    sec, nanosec = (_STAMP_LE if little else _STAMP_BE).unpack_from(buf, offset)
    if nanosec >= 1_000_000_000:
        return None
    return sec * 1_000_000_000 + nanosec


def header_frame_id(buf: bytes) -> str:
    """Decode header.frame_id (used off the hot path, e.g. for diagnostics), or raise `CdrError`."""
    little, offset = _layout(buf)
    start = offset + 8
    if len(buf) < start + 4:
        raise CdrError(f'buffer of {len(buf)} bytes ends before header.frame_id length')
    (length,) = (_U32_LE if little else _U32_BE).unpack_from(buf, start)
    if length == 0 or length > MAX_FRAME_ID_BYTES:
        raise CdrError(f'header.frame_id length {length} is not a valid string length')
    end = start + 4 + length
    if len(buf) < end:
        raise CdrError(f'header.frame_id of {length} bytes runs past the {len(buf)}-byte buffer')
    raw = buf[start + 4:end]
    if raw[-1] != 0:
        raise CdrError('header.frame_id is not NUL-terminated')
    try:
        return raw[:-1].decode('utf-8')
    except UnicodeDecodeError as exc:
        raise CdrError(f'header.frame_id is not UTF-8: {exc.reason}') from None
