"""The OTLP exporters' own log lines: one per outage (no ROS imports).

A dead or unreachable collector makes the OTLP exporters log every retry and every failed batch
(about one line a second, with a traceback for some). A robot says so once: the first warning or
error of an outage passes, the rest are held back (and counted) until an export succeeds again,
when one line says so with the count; meanwhile the node's `model` status is WARN with the count
and this last error (`last_error`). The filter also notes when an exporter last reported trouble,
which the bounded shutdown reads to give up on a batch stuck in its retries
(`otel_sdk._CountingExporter.stuck`). One state for all the exporter loggers: an outage is one
outage whichever of them reports it.
"""
from __future__ import annotations

import logging
import time
from typing import Optional

#: time.monotonic() of the latest warning or error an OTLP exporter logged (a refused or failed
#: export, "retrying in ..."); written by the filter on their loggers (`_OnePerOutage`).
_exporter_trouble_mono = [float('-inf')]

_EXPORTER_LOGGERS = ('opentelemetry.exporter.otlp.proto.grpc.exporter',
                     'opentelemetry.exporter.otlp.proto.http.trace_exporter',
                     'opentelemetry.sdk._shared_internal')
_log = logging.getLogger('liquid_edge_ros_monitor.tracing')


class _Outage:
    """The state every exporter logger's filter shares."""

    failing = False
    suppressed = 0
    last_error: Optional[str] = None


class _OnePerOutage(logging.Filter):
    """Passes the first warning or error of an outage; holds back the rest until `recovered()`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        _exporter_trouble_mono[0] = time.monotonic()      # seen by `_CountingExporter.stuck`
        _Outage.last_error = record.getMessage().splitlines()[0][:200]
        if not _Outage.failing:
            _Outage.failing = True
            record.msg = (f'{record.msg} (trace export failing: further export errors are held '
                          'back until it works again; see the model status)')
            return True
        _Outage.suppressed += 1
        return False


def recovered() -> None:
    """An export succeeded: an outage, if one was going on, is over (one line says so)."""
    if _Outage.failing:
        _Outage.failing = False
        n, _Outage.suppressed = _Outage.suppressed, 0
        _log.info(f'trace export works again ({n} export error lines were held back)')


def last_error() -> Optional[str]:
    """The first line of the latest export error an exporter logged (None before any)."""
    return _Outage.last_error


_installed: list = []


def _throttle_exporter_logs() -> None:
    if _installed:
        return
    _log.setLevel(logging.INFO)                    # the recovery line is news, not a warning
    for name in _EXPORTER_LOGGERS:
        f = _OnePerOutage()
        logging.getLogger(name).addFilter(f)
        _installed.append(f)
