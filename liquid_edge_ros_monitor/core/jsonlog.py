"""Structured JSON logging for our Python loggers: one JSON object per line, with the trace and span
ids of the current OpenTelemetry span, so a log line and its trace can be joined in the backend.

Why the standard library suffices (python-json-logger is not a dependency): a `logging.Formatter`
that builds a dict from the `LogRecord` and calls `json.dumps` is all such a package does for us;
the only parts with judgement are which record attributes are "extra" (everything not set by
`LogRecord.__init__`, found from a blank record) and a `str` fallback for values JSON can't hold.

Off by default: the node calls `enable_json_logging()` when its parameter asks for it. Records are
formatted only when a handler emits them, so nothing here runs on a path that doesn't log.

A tail-sampled callback has no OpenTelemetry span while it runs (its spans are made afterwards, if
it is kept), yet its log lines must carry the trace id it will have: such code sets `trace_ids`
for the duration, and the formatter uses it when no recording span is current. Its value is
(trace_id, span_id) as ints, or an object whose `trace_ids()` returns them (or None): the
instrumentation's running callback, which draws its ids only when something asks.
"""
from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any, Dict, Optional, TextIO

from opentelemetry import trace

# Attributes every LogRecord has (plus the ones Formatter.format adds); anything else came from extra=.
#: The work in progress when it has no OpenTelemetry span (yet): (trace_id, span_id), or an object
#: whose `trace_ids()` gives them (see the module docstring).
trace_ids: ContextVar[Any] = ContextVar('liquid_edge_trace_ids', default=None)

_STANDARD = frozenset(vars(logging.LogRecord('', 0, '', 0, '', None, None))) | {'message', 'asctime', 'taskName'}


def _timestamp(created: float) -> str:
    """ISO 8601 in UTC with milliseconds, e.g. 2026-03-01T12:00:00.123Z."""
    return datetime.fromtimestamp(created, tz=timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3] + 'Z'


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON: timestamp, level, logger, message, module, function,
    line, the `extra=` fields, `exception` (with traceback) if any, and `trace_id` / `span_id`
    (lowercase hex, 32 / 16 digits) when logged inside a recording span."""

    def format(self, record: logging.LogRecord) -> str:
        entry: Dict[str, Any] = {
            'timestamp': _timestamp(record.created),
            'level': record.levelname,
            'logger': record.name,
            'message': record.getMessage(),
            'module': record.module,
            'function': record.funcName,
            'line': record.lineno,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry['exception'] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry['exception'] = record.exc_text
        if record.stack_info:
            entry['stack'] = self.formatStack(record.stack_info)
        span = trace.get_current_span()
        ids = trace_ids.get()
        if ids is not None and type(ids) is not tuple:
            ids = ids.trace_ids()
        if span.is_recording():
            ctx = span.get_span_context()
            ids = ctx.trace_id, ctx.span_id
        if ids is not None:
            entry['trace_id'] = format(ids[0], '032x')
            entry['span_id'] = format(ids[1], '016x')
        return json.dumps(entry, default=str, ensure_ascii=False)


def enable_json_logging(logger_name: str = 'liquid_edge_ros_monitor',
                        stream: Optional[TextIO] = None, level: Optional[int] = None) -> logging.Handler:
    """Attach a JSON handler to `logger_name` (writing to `stream`, default sys.stderr at call time)
    and return it, for `disable_json_logging`. `level`, if given, is set on the logger."""
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(logger_name)
    if level is not None:
        logger.setLevel(level)
    logger.addHandler(handler)
    handler._json_logger_name = logger_name  # type: ignore[attr-defined]  # for disable_json_logging
    return handler


def disable_json_logging(handler: logging.Handler) -> None:
    """Detach and close a handler returned by `enable_json_logging`."""
    name = getattr(handler, '_json_logger_name', None)
    if name is not None:
        logging.getLogger(name).removeHandler(handler)
    handler.close()
