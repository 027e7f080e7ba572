"""The one adapter over OpenTelemetry SDK internals (no ROS imports).

Everything here subclasses or wraps public SDK classes; exactly one private attribute is read:
the batch processor's queue (`BatchSpanProcessor._batch_processor._queue`, SDK 1.45), so that a
span arriving at a full queue is counted and dropped here instead of being logged by the SDK
(a LogRecord per span, ~4x the span's cost exactly when the collector is dead). `QUEUE_ATTRIBUTE`
names it; `test_instrument_otel_sdk.py` fails loudly when an SDK upgrade moves it, and at run time
the processor then falls back to the SDK's own behaviour.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Mapping, Optional, Sequence
from urllib.parse import urlparse

from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from .export_logs import _exporter_trouble_mono, recovered
from .otel_env import TracingConfig

#: The private path to the batch processor's queue, read once per processor.
QUEUE_ATTRIBUTE = ('_batch_processor', '_queue')

#: How long an export in flight may take at shutdown before it is given up (it is given up at once
#: once its exporter logged a failure or a retry since it began: it is waiting out a backoff).
#: A slow collector (TLS over a cellular link) answers within this; a dead one never does.
SLOW_EXPORT_S = 1.0


class _CountingExporter(SpanExporter):
    """Wraps the OTLP exporter: counts exported and failed spans per batch (off the hot path) and
    makes shutdown idempotent, so `Tracing.shutdown` may abort it while the SDK's own shutdown is
    still waiting."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self._closed = False
        self.exported = 0
        self.failed = 0
        self.last_failed = False     # the latest export failed: the collector is unreachable
        self._since: Optional[float] = None    # monotonic start of the export in flight

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        if self._closed:
            result = SpanExportResult.FAILURE
        else:
            self._since = time.monotonic()
            try:
                result = self._inner.export(spans)
            except Exception:  # an exporter bug must not kill the batch thread
                result = SpanExportResult.FAILURE
            finally:
                self._since = None
        if result is SpanExportResult.SUCCESS:
            self.exported += len(spans)
            recovered()
        else:
            self.failed += len(spans)
        self.last_failed = result is not SpanExportResult.SUCCESS
        return result

    def in_flight_s(self) -> float:
        """How long the export in flight has taken so far (0 when none is)."""
        since = self._since
        return 0.0 if since is None else max(0.0, time.monotonic() - since)

    def stuck(self) -> bool:
        """The export in flight will not finish soon: its exporter has logged a failure or a
        retry since it began (it waits out a backoff, up to the export timeout), or it has taken
        longer than `SLOW_EXPORT_S`."""
        since = self._since
        if since is None:
            return False
        return _exporter_trouble_mono[0] >= since or time.monotonic() - since >= SLOW_EXPORT_S

    def shutdown(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def sdk_queue(processor: BatchSpanProcessor) -> Optional[Any]:
    """The batch processor's span queue (a deque), or None where this SDK keeps it elsewhere."""
    obj: Any = processor
    for name in QUEUE_ATTRIBUTE:
        obj = getattr(obj, name, None)
    return obj


class _DroppingBatchSpanProcessor(BatchSpanProcessor):
    """The SDK's BatchSpanProcessor, except that a span arriving at a full queue is counted and
    dropped here. The SDK would log "Queue full, dropping Span." for every such span (a LogRecord is
    built before its duplicate filter discards it), which made each span ~4x dearer exactly when the
    collector is dead. Reads the SDK's queue (1.45: `_batch_processor._queue`); if a later SDK
    moves it, this falls back to the SDK's own behaviour (and `test_instrument_otel_sdk` fails)."""

    def __init__(self, exporter: SpanExporter, max_queue_size: int, **kwargs: Any) -> None:
        super().__init__(exporter, max_queue_size=max_queue_size, **kwargs)
        self._queue = sdk_queue(self)
        self._limit = max_queue_size
        self.dropped = 0

    def on_end(self, span: Any) -> None:
        queue = self._queue
        if queue is not None and len(queue) >= self._limit and span.context.trace_flags.sampled:
            self.dropped += 1
            return
        super().on_end(span)

    def room(self) -> int:
        """Spans the queue can still take (a large number where the SDK's queue is not visible)."""
        queue = self._queue
        return self._limit - len(queue) if queue is not None else self._limit


def _frozen_resource(attributes: Mapping[str, Any]) -> Any:
    """A Resource whose hash is computed once. The OTLP encoder groups spans by resource and so
    hashes the resource of every span, and `Resource.__hash__` serialises all its attributes to
    JSON each time (~9 us a span on a 2-core VM); ours never change."""
    from opentelemetry.sdk.resources import Resource

    class FrozenResource(Resource):
        def __init__(self, attrs: Mapping[str, Any]) -> None:
            super().__init__(attrs)
            self._hash = super().__hash__()

        def __hash__(self) -> int:
            return self._hash

        def __eq__(self, other: object) -> bool:
            return super().__eq__(other)

    return FrozenResource(attributes)


def _make_exporter(config: TracingConfig) -> Any:
    if config.protocol == 'grpc':
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
        return GrpcExporter(endpoint=config.endpoint, insecure=urlparse(config.endpoint).scheme == 'http',
                            timeout=config.export_timeout_s)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
    return HttpExporter(endpoint=config.endpoint, timeout=config.export_timeout_s)
