"""One import for diagnostics: the real `diagnostic_updater` when installed, else our compatible module.

    from liquid_edge_ros_monitor.diagnostics import Updater, OK, WARN, level_to_int

On a ROS 2 install from packages (`ros-<distro>-diagnostic-updater`) this is ros/diagnostics'
`diagnostic_updater`; on the pip-only path, where that package has no wheel, it is
`liquid_edge_ros_monitor.diagnostic_updater_compat` (same names and behaviour; its docstring lists the
few deliberate differences). `UPSTREAM` says which one was loaded.

Code written against this module must work with both:
- levels are the `bytes` constants below (`b'\\x00'`..`b'\\x03'`), never ints; use `level_to_int()`
  where an int is needed (Prometheus, comparisons with ints);
- `add(key, value)` takes a `str` value: format numbers yourself (`f'{rate:.1f}'`);
- only the API subset listed in the compat module's docstring is used.
"""
from __future__ import annotations

from typing import Union

from diagnostic_msgs.msg import DiagnosticStatus

from .levels import LEVEL_NAMES

try:
    from diagnostic_updater import (  # type: ignore[import-not-found]
        CompositeDiagnosticTask,
        DiagnosticStatusWrapper,
        DiagnosticTask,
        FunctionDiagnosticTask,
        Updater,
    )
    UPSTREAM = True
except ImportError:
    from .diagnostic_updater_compat import (
        CompositeDiagnosticTask,
        DiagnosticStatusWrapper,
        DiagnosticTask,
        FunctionDiagnosticTask,
        Updater,
    )
    UPSTREAM = False

OK: bytes = DiagnosticStatus.OK
WARN: bytes = DiagnosticStatus.WARN
ERROR: bytes = DiagnosticStatus.ERROR
STALE: bytes = DiagnosticStatus.STALE

__all__ = [
    'UPSTREAM', 'OK', 'WARN', 'ERROR', 'STALE', 'LEVEL_NAMES',
    'DiagnosticStatusWrapper', 'DiagnosticTask', 'FunctionDiagnosticTask', 'CompositeDiagnosticTask',
    'Updater', 'level_to_int', 'int_to_level',
]


def level_to_int(lvl: Union[bytes, bytearray, int]) -> int:
    """A diagnostic level as an int 0..3 (OK, WARN, ERROR, STALE), from the message's bytes or int."""
    if isinstance(lvl, (bytes, bytearray)):
        if len(lvl) != 1:
            raise ValueError(f'a diagnostic level is one byte, got {lvl!r}')
        value = lvl[0]
    elif isinstance(lvl, int) and not isinstance(lvl, bool):
        value = lvl
    else:
        raise TypeError(f'a diagnostic level is bytes or int, got {type(lvl).__name__}')
    if not 0 <= value <= 3:
        raise ValueError(f'diagnostic level {value} is outside 0..3')
    return value


def int_to_level(value: int) -> bytes:
    """The `bytes` level for an int 0..3 (the inverse of `level_to_int`)."""
    return bytes([level_to_int(value)])
