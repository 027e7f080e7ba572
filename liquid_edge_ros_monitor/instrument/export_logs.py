"""The OTLP exporters' own log lines, throttled (no ROS imports).

A dead collector makes the OTLP exporters log every retry and every failed batch (about one line a
second, with a traceback for some); a robot without a collector should say so once a minute, not
fill its log. The filter also notes when an exporter last reported trouble, which the bounded
shutdown reads to give up on a batch stuck in its retries (`otel_sdk._CountingExporter.stuck`).
"""
from __future__ import annotations

import logging
import time

#: time.monotonic() of the latest warning or error an OTLP exporter logged (a refused or failed
#: export, "retrying in ..."); written by the filter on their loggers (`_Throttle`).
_exporter_trouble_mono = [float('-inf')]


class _Throttle(logging.Filter):
    """Lets one export-failure record through per `interval_s` per logger. A dead collector makes
    the OTLP exporters log every retry and every failed batch (about one line a second); a robot
    without a collector should say so once a minute, not fill its log."""

    def __init__(self, interval_s: float = 60.0) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._next = 0.0
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if record.levelno >= logging.WARNING:
            _exporter_trouble_mono[0] = now       # seen by `_CountingExporter.stuck`
        if now >= self._next:
            self._next = now + self.interval_s
            if self.suppressed:
                record.msg = f'{record.msg} ({self.suppressed} similar messages suppressed)'
                self.suppressed = 0
            return True
        self.suppressed += 1
        return False


_EXPORTER_LOGGERS = ('opentelemetry.exporter.otlp.proto.grpc.exporter',
                     'opentelemetry.exporter.otlp.proto.http.trace_exporter',
                     'opentelemetry.sdk._shared_internal')
_throttled: list = []


def _throttle_exporter_logs() -> None:
    if _throttled:
        return
    for name in _EXPORTER_LOGGERS:
        f = _Throttle()
        logging.getLogger(name).addFilter(f)
        _throttled.append(f)
