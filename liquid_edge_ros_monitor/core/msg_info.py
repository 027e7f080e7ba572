"""Which fields of an rclpy `MessageInfo` are known: one rule for every place that reads one.

rclpy hands a subscription callback (two arguments) or `take` a MessageInfo: a dict with
`source_timestamp`, `received_timestamp` (ns, wall clock) and `publication_sequence_number`. What
fills them depends on the rmw:

- Fast DDS fills all three.
- rmw_cyclonedds_cpp reports the sequence number as UINT64_MAX ("unsupported", its rmw_node.cpp);
  an OpenTelemetry span attribute must fit a signed int64, so the OTLP encoder logged an ERROR with
  a traceback for every kept span carrying it (about 200 KB/s of log at 200 Hz).
- Others report 0 for what they do not have (also for timestamps).

So 0 and anything at or above 2^62 (UINT64_MAX, and values no real writer reaches: 2^62 messages
at 1 MHz is 146,000 years) mean unknown. Used by the topic monitor's hot path (a comparison, no
call) through `SEQUENCE_LIMIT`, and by the instrumentation through the functions.
"""
from __future__ import annotations

from typing import Any, Optional

#: Sequence numbers and timestamps at or above this are not real (UINT64_MAX: unsupported).
SEQUENCE_LIMIT = 1 << 62

SEQUENCE = 'publication_sequence_number'
SOURCE_TIMESTAMP = 'source_timestamp'
RECEIVED_TIMESTAMP = 'received_timestamp'


def known(value: Any) -> Optional[int]:
    """`value` as an int when it is a real sequence number or timestamp, else None (0, UINT64_MAX,
    negative, missing, not a number)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 < value < SEQUENCE_LIMIT else None


def field(info: Any, name: str) -> Optional[int]:
    """Field `name` of a MessageInfo (a mapping) when known, else None; None for anything that is
    not a MessageInfo at all (a callback's second argument may be something else)."""
    get = getattr(info, 'get', None)
    if get is None:
        return None
    try:
        return known(get(name))
    except TypeError:
        return None


def sequence_number(info: Any) -> Optional[int]:
    """The publication sequence number, when the rmw provides one."""
    return field(info, SEQUENCE)
