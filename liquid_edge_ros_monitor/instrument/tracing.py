"""OpenTelemetry tracing for an instrumented node: a tracer whose export can never slow the node
down, and a bounded shutdown (no ROS imports).

Why a provider of our own instead of the global one: two nodes composed into one process must not
fight over `trace.set_tracer_provider` (it can be set only once), and each node names itself in its
resource. Callers use `Tracing.tracer`; when tracing is disabled it is a `NoOpTracer`, so the node's
code is the same either way.

Why the export is safe with a dead collector: spans are ended into the SDK's `BatchSpanProcessor`
(a bounded deque and a background thread), so starting and ending a span never does I/O. The OTLP
exporters retry with exponential backoff (1 s, 2 s, 4 s, ...) until their timeout, and the SDK's own
shutdown waits up to 30 s for that; `Tracing.shutdown(timeout_s)` instead waits at most `timeout_s`
for the final flush, then shuts the exporter down, which interrupts the backoff wait (and closes the
gRPC channel), so it returns within `timeout_s` plus a short grace.

Configuration: `otel_env.TracingConfig`; SDK adapters: `otel_sdk`; exporter logs: `export_logs`.
"""
from __future__ import annotations

import atexit
import socket
import threading
import time
from typing import Any, Callable, Dict, Mapping, Optional

from opentelemetry import trace

from .export_logs import _throttle_exporter_logs
from .otel_env import SCOPE, TracingConfig
from .otel_sdk import (_CountingExporter, _DroppingBatchSpanProcessor, _frozen_resource,
                       _make_exporter)
from .trace_export import KeptTraces

#: How long `Tracing.shutdown` waits for the final flush when the latest export failed, seconds.
UNREACHABLE_FLUSH_S = 0.25


class Tracing:
    """A node's tracer and what stands behind it. Build it with `setup_tracing`."""

    def __init__(self, config: TracingConfig, tracer: trace.Tracer, provider: Any = None,
                 exporter: Optional[_CountingExporter] = None,
                 processor: Optional[_DroppingBatchSpanProcessor] = None) -> None:
        self.config = config
        self.tracer = tracer
        self._provider = provider
        self._exporter = exporter
        self._processor = processor
        #: Where the inference callback hands its kept (tail-sampled) callbacks; None when off.
        self.kept: Optional[KeptTraces] = None
        if provider is not None and processor is not None:
            from opentelemetry.sdk.util.instrumentation import InstrumentationScope
            self.kept = KeptTraces(processor, provider.resource, InstrumentationScope(SCOPE),
                                   max_pending=max(1, config.max_queue_size // 4))
        self._shutdown_lock = threading.Lock()
        self._done = provider is None
        if provider is not None:
            atexit.register(self._shutdown_at_exit)

    @property
    def enabled(self) -> bool:
        """Tracing on: callbacks are sampled (and their traces exported where an endpoint is)."""
        return self.config.enabled

    @property
    def exporting(self) -> bool:
        """Kept traces are exported (an endpoint was given)."""
        return self._provider is not None

    @property
    def export_failing(self) -> bool:
        """The latest export failed (collector unreachable or refusing), until one succeeds."""
        return self._exporter is not None and self._exporter.last_failed

    @property
    def resource_attributes(self) -> Dict[str, Any]:
        return dict(self._provider.resource.attributes) if self._provider is not None else {}

    @property
    def exported_spans(self) -> int:
        """Spans the collector accepted."""
        return self._exporter.exported if self._exporter is not None else 0

    @property
    def failed_spans(self) -> int:
        """Spans lost because an export failed (collector missing, dead or refusing)."""
        return self._exporter.failed if self._exporter is not None else 0

    @property
    def dropped_spans(self) -> int:
        """Spans dropped because the export queue was full (collector too slow or dead)."""
        return self._processor.dropped if self._processor is not None else 0

    @property
    def dropped_traces(self) -> int:
        """Kept callbacks dropped before they became spans (their hand-over queue was full)."""
        return self.kept.dropped if self.kept is not None else 0

    def force_flush(self, timeout_s: float = 5.0) -> bool:
        """Export what is queued now (tests, and before a planned stop); bounded like `shutdown`."""
        if self._provider is None or self._done:
            return True
        start = time.monotonic()
        if self.kept is not None and not self.kept.flush(timeout_s):
            return False
        left = max(0.0, timeout_s - (time.monotonic() - start))
        return self._bounded(lambda: self._provider.force_flush(int(left * 1000)), left)

    def shutdown(self, timeout_s: Optional[float] = None) -> bool:
        """Flush and stop, waiting at most `timeout_s` (default: the export timeout) for the flush,
        then aborting the exporter; returns within about timeout_s + 0.5 s even with a dead
        collector. True when everything stopped in time. Safe to call twice."""
        with self._shutdown_lock:
            if self._done:
                return True
            self._done = True
        atexit.unregister(self._shutdown_at_exit)
        timeout = self.config.export_timeout_s if timeout_s is None else max(0.0, timeout_s)
        start = time.monotonic()
        if self.kept is not None:
            self.kept.close(timeout / 2)
        timeout = max(0.0, timeout - (time.monotonic() - start))
        exporter = self._exporter
        if exporter is not None and exporter.last_failed:
            # The collector refused the latest batch: a flush would only wait out the exporter's
            # retries (the stop of a robot's controller should not); keep a short grace.
            timeout = min(timeout, UNREACHABLE_FLUSH_S)
        # The same when the batch in flight is stuck in its retries (it has not failed *yet*).
        clean = self._bounded(self._provider.shutdown, timeout,
                              give_up=None if exporter is None else exporter.stuck)
        if not clean and self._exporter is not None:
            # Interrupts the exporter's retry backoff and closes its channel/session; the SDK's
            # worker thread (a daemon) then finishes on its own.
            self._exporter.shutdown()
        return clean

    def _shutdown_at_exit(self) -> None:
        self.shutdown(min(self.config.export_timeout_s, 2.0))

    @staticmethod
    def _bounded(fn: Any, timeout_s: float, give_up: Optional[Callable[[], bool]] = None) -> bool:
        """Run `fn` in a daemon thread; wait for it at most `timeout_s`, or until `give_up()`."""
        worker = threading.Thread(target=fn, name='tracing-shutdown', daemon=True)
        worker.start()
        deadline = time.monotonic() + timeout_s
        while worker.is_alive():
            left = deadline - time.monotonic()
            if left <= 0 or (give_up is not None and give_up()):
                break
            worker.join(min(left, 0.02))
        return not worker.is_alive()


def setup_tracing(config: TracingConfig, resource_attributes: Optional[Mapping[str, str]] = None) -> Tracing:
    """A `Tracing` for one node. Resource: OTEL_RESOURCE_ATTRIBUTES (config.resource_attributes),
    then `resource_attributes` (ros.node.name, ros.node.namespace, ros.domain_id: facts of the
    process win), then service.name and host.name (unless given). Disabled, or no endpoint given
    (`config.export` False): a NoOpTracer and no exporter."""
    if not config.enabled or not config.export:
        return Tracing(config, trace.NoOpTracer())
    _throttle_exporter_logs()
    from opentelemetry.sdk.resources import (HOST_NAME, SERVICE_NAME, TELEMETRY_SDK_LANGUAGE,
                                             TELEMETRY_SDK_NAME, TELEMETRY_SDK_VERSION)
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    from opentelemetry.sdk.version import __version__ as sdk_version

    attrs: Dict[str, Any] = {TELEMETRY_SDK_LANGUAGE: 'python', TELEMETRY_SDK_NAME: 'opentelemetry',
                             TELEMETRY_SDK_VERSION: sdk_version, HOST_NAME: socket.gethostname()}
    attrs.update(config.resource_attributes)
    attrs.update({str(k): str(v) for k, v in (resource_attributes or {}).items()})
    attrs[SERVICE_NAME] = config.service_name
    root = TraceIdRatioBased(config.sampling_ratio)
    sampler = ParentBased(root) if config.parent_based else root
    provider = TracerProvider(sampler=sampler, resource=_frozen_resource(attrs),
                              shutdown_on_exit=False)
    exporter = _CountingExporter(_make_exporter(config))
    processor = _DroppingBatchSpanProcessor(
        exporter, max_queue_size=config.max_queue_size,
        schedule_delay_millis=config.schedule_delay_s * 1000.0,
        max_export_batch_size=config.max_export_batch_size,
        export_timeout_millis=config.export_timeout_s * 1000.0)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer(SCOPE)
    return Tracing(config, tracer, provider, exporter, processor)
