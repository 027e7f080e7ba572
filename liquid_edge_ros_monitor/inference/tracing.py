"""OpenTelemetry tracing for the inference node: configuration from the standard `OTEL_*` variables
(ROS parameters win), and a tracer whose export can never slow the node down (no ROS imports).

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

Environment handling follows the OpenTelemetry specification (SDK environment variables and OTLP
exporter configuration): a signal-specific endpoint (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is used
as it is; the base endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`) gets `v1/traces` appended for
http/protobuf; defaults are http://localhost:4317 (grpc) and http://localhost:4318/v1/traces
(http/protobuf). Every invalid value raises `ValueError` with one line naming the variable or the
parameter.
"""
from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Dict, Mapping, Optional, Sequence
from urllib.parse import unquote, urlparse

from opentelemetry import trace
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from .trace_export import KeptTraces

PROTOCOLS = ('grpc', 'http/protobuf')
DEFAULT_GRPC_ENDPOINT = 'http://localhost:4317'
DEFAULT_HTTP_BASE_ENDPOINT = 'http://localhost:4318'
TRACES_PATH = 'v1/traces'
DEFAULT_SERVICE_NAME = 'liquid_edge_ros_monitor'
SCOPE = 'liquid_edge_ros_monitor'   # the instrumentation scope of our spans
DEFAULT_EXPORT_TIMEOUT_S = 10.0  # OTEL_EXPORTER_OTLP_TIMEOUT default (10000 ms)
# The spec's sampler names; all of them map onto ParentBased(TraceIdRatioBased(ratio)) or its root.
_SAMPLERS = ('always_on', 'always_off', 'traceidratio', 'parentbased_always_on',
             'parentbased_always_off', 'parentbased_traceidratio')


def _problem(source: str, message: str) -> ValueError:
    return ValueError(f'{source}: {message}')


def _parse_bool(source: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ('true', '1', 'yes', 'on'):
        return True
    if text in ('false', '0', 'no', 'off'):
        return False
    raise _problem(source, f"must be true or false, got '{value}'")


def _parse_ratio(source: str, value: Any) -> float:
    try:
        ratio = float(value)
    except (TypeError, ValueError):
        raise _problem(source, f"must be a number in [0, 1], got '{value}'") from None
    if not 0.0 <= ratio <= 1.0:  # also rejects NaN
        raise _problem(source, f'must be in [0, 1], got {value}')
    return ratio


def _parse_protocol(source: str, value: Any) -> str:
    text = str(value).strip().lower()
    if text not in PROTOCOLS:
        raise _problem(source, f"must be grpc or http/protobuf, got '{value}'")
    return text


def _check_endpoint(source: str, value: Any) -> str:
    text = str(value).strip()
    try:
        url = urlparse(text)
        url.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise _problem(source, f"must be a URL such as http://localhost:4317, got '{value}'") from None
    if url.scheme not in ('http', 'https') or not url.hostname:
        raise _problem(source, f"must be an http:// or https:// URL with a host, got '{value}'")
    return text


def _traces_url(base: str) -> str:
    """The spec's rule for a base endpoint over http/protobuf: append v1/traces to its path."""
    return base + TRACES_PATH if base.endswith('/') else f'{base}/{TRACES_PATH}'


def _parse_timeout_ms(source: str, value: Any) -> float:
    try:
        ms = float(value)
    except (TypeError, ValueError):
        raise _problem(source, f"must be a number of milliseconds > 0, got '{value}'") from None
    if not ms > 0:
        raise _problem(source, f'must be a number of milliseconds > 0, got {value}')
    return ms / 1000.0


def parse_resource_attributes(source: str, value: str) -> Dict[str, str]:
    """`key1=value1,key2=value2` with percent-encoded values (the OTEL_RESOURCE_ATTRIBUTES format)."""
    attrs: Dict[str, str] = {}
    for item in value.split(','):
        if not item.strip():
            continue
        key, sep, val = item.partition('=')
        if not sep or not key.strip():
            raise _problem(source, f"entries must be key=value separated by commas, got '{item.strip()}'")
        attrs[key.strip()] = unquote(val.strip())
    return attrs


@dataclass(frozen=True)
class TracingConfig:
    """What `setup_tracing` needs. `endpoint` is the full URL the exporter sends to (for
    http/protobuf it includes the /v1/traces path). `parent_based` False means the sampler ignores
    the parent's decision (the spec's `traceidratio`); the node only makes root spans, so it rarely
    matters. `resource_attributes` come from OTEL_RESOURCE_ATTRIBUTES. The batch settings are the
    SDK's defaults except `schedule_delay_s` (1 s, not 5 s: spans show up sooner, same batching).
    Headers, certificates and compression are read by the OTLP exporters themselves from their
    OTEL_EXPORTER_OTLP_* variables."""

    enabled: bool = True
    endpoint: str = DEFAULT_GRPC_ENDPOINT
    protocol: str = 'grpc'
    sampling_ratio: float = 1.0
    service_name: str = DEFAULT_SERVICE_NAME
    export_timeout_s: float = DEFAULT_EXPORT_TIMEOUT_S
    parent_based: bool = True
    resource_attributes: Mapping[str, str] = field(default_factory=dict)
    max_queue_size: int = 2048
    max_export_batch_size: int = 512
    schedule_delay_s: float = 1.0

    def __post_init__(self) -> None:
        # Direct construction gets the same one-line checks as the environment and the overrides.
        _parse_protocol('protocol', self.protocol)
        _check_endpoint('endpoint', self.endpoint)
        _parse_ratio('sampling_ratio', self.sampling_ratio)
        if not self.service_name:
            raise _problem('service_name', 'must not be empty')
        for name in ('export_timeout_s', 'schedule_delay_s'):
            if not getattr(self, name) > 0:
                raise _problem(name, f'must be > 0, got {getattr(self, name)}')
        if not 1 <= self.max_export_batch_size <= self.max_queue_size:
            raise _problem('max_export_batch_size',
                           f'must be in [1, max_queue_size={self.max_queue_size}], '
                           f'got {self.max_export_batch_size}')

    @classmethod
    def from_env(cls, overrides: Optional[Mapping[str, Any]] = None, *,
                 environ: Optional[Mapping[str, str]] = None,
                 parameter_prefix: str = '') -> 'TracingConfig':
        """Read the standard OTEL_* variables from `environ` (default: os.environ), then apply the
        non-empty `overrides` (keys are this class's field names; None or '' means "not set").
        An override `endpoint` is a base endpoint like OTEL_EXPORTER_OTLP_ENDPOINT: for
        http/protobuf /v1/traces is appended unless its path already ends with it.
        `parameter_prefix` (e.g. 'tracing.') only shapes the error messages for overrides."""
        env = os.environ if environ is None else environ
        overrides = {k: v for k, v in (overrides or {}).items() if v is not None and v != ''}
        known = {f.name for f in fields(cls)}
        for key in overrides:
            if key not in known:
                raise _problem(f"parameter '{parameter_prefix}{key}'",
                               f"unknown tracing setting (known: {', '.join(sorted(known))})")

        def param(key: str) -> str:
            return f"parameter '{parameter_prefix}{key}'"

        def get(name: str) -> Optional[str]:
            value = env.get(name)
            return value.strip() if value is not None and value.strip() else None

        enabled = True
        if get('OTEL_SDK_DISABLED') is not None:
            enabled = not _parse_bool('OTEL_SDK_DISABLED', get('OTEL_SDK_DISABLED'))
        if 'enabled' in overrides:
            enabled = _parse_bool(param('enabled'), overrides['enabled'])
        if not enabled:
            # Settings that will not be used never stop the controller (an endpoint left in the
            # environment of a robot whose tracing is off, say).
            return cls(enabled=False)

        if 'protocol' in overrides:
            protocol = _parse_protocol(param('protocol'), overrides['protocol'])
        elif get('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') is not None:
            protocol = _parse_protocol('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL',
                                       get('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'))
        elif get('OTEL_EXPORTER_OTLP_PROTOCOL') is not None:
            protocol = _parse_protocol('OTEL_EXPORTER_OTLP_PROTOCOL', get('OTEL_EXPORTER_OTLP_PROTOCOL'))
        else:
            protocol = 'grpc'

        http = protocol == 'http/protobuf'
        if 'endpoint' in overrides:
            base = _check_endpoint(param('endpoint'), overrides['endpoint'])
            done = urlparse(base).path.rstrip('/').endswith('/' + TRACES_PATH)
            endpoint = _traces_url(base) if http and not done else base
        elif get('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') is not None:
            endpoint = _check_endpoint('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
                                       get('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'))
        elif get('OTEL_EXPORTER_OTLP_ENDPOINT') is not None:
            base = _check_endpoint('OTEL_EXPORTER_OTLP_ENDPOINT', get('OTEL_EXPORTER_OTLP_ENDPOINT'))
            endpoint = _traces_url(base) if http else base
        else:
            endpoint = _traces_url(DEFAULT_HTTP_BASE_ENDPOINT) if http else DEFAULT_GRPC_ENDPOINT

        ratio, parent_based = 1.0, True
        sampler = get('OTEL_TRACES_SAMPLER')
        if sampler is not None:
            sampler = sampler.lower()
            if sampler not in _SAMPLERS:
                raise _problem('OTEL_TRACES_SAMPLER', f"must be one of {', '.join(_SAMPLERS)}, "
                                                      f"got '{get('OTEL_TRACES_SAMPLER')}'")
            parent_based = sampler.startswith('parentbased_')
            if sampler.endswith('always_off'):
                ratio = 0.0
            elif sampler.endswith('traceidratio') and get('OTEL_TRACES_SAMPLER_ARG') is not None:
                ratio = _parse_ratio('OTEL_TRACES_SAMPLER_ARG', get('OTEL_TRACES_SAMPLER_ARG'))
        if 'sampling_ratio' in overrides:
            ratio = _parse_ratio(param('sampling_ratio'), overrides['sampling_ratio'])
        if 'parent_based' in overrides:
            parent_based = _parse_bool(param('parent_based'), overrides['parent_based'])

        attrs: Dict[str, str] = {}
        if get('OTEL_RESOURCE_ATTRIBUTES') is not None:
            attrs = parse_resource_attributes('OTEL_RESOURCE_ATTRIBUTES', get('OTEL_RESOURCE_ATTRIBUTES'))
        if 'resource_attributes' in overrides:
            attrs.update({str(k): str(v) for k, v in dict(overrides['resource_attributes']).items()})

        # Spec precedence: OTEL_SERVICE_NAME over service.name in OTEL_RESOURCE_ATTRIBUTES.
        service_name = (str(overrides['service_name']) if 'service_name' in overrides
                        else get('OTEL_SERVICE_NAME') or attrs.get('service.name') or DEFAULT_SERVICE_NAME)

        timeout_s = DEFAULT_EXPORT_TIMEOUT_S
        for name in ('OTEL_EXPORTER_OTLP_TRACES_TIMEOUT', 'OTEL_EXPORTER_OTLP_TIMEOUT'):
            if get(name) is not None:
                timeout_s = _parse_timeout_ms(name, get(name))
                break
        if 'export_timeout_s' in overrides:
            value = overrides['export_timeout_s']
            try:
                timeout_s = float(value)
            except (TypeError, ValueError):
                raise _problem(param('export_timeout_s'), f"must be a number of seconds > 0, got '{value}'") from None
            if not timeout_s > 0:
                raise _problem(param('export_timeout_s'), f'must be a number of seconds > 0, got {value}')

        extra: Dict[str, Any] = {}
        for key, kind in (('max_queue_size', int), ('max_export_batch_size', int), ('schedule_delay_s', float)):
            if key in overrides:
                try:
                    extra[key] = kind(overrides[key])
                except (TypeError, ValueError):
                    raise _problem(param(key), f"must be a number, got '{overrides[key]}'") from None
        try:
            return cls(enabled=enabled, endpoint=endpoint, protocol=protocol, sampling_ratio=ratio,
                       service_name=service_name, export_timeout_s=timeout_s, parent_based=parent_based,
                       resource_attributes=attrs, **extra)
        except ValueError as exc:  # a field check: name it as the parameter it came from
            raise _problem(param(str(exc).split(':', 1)[0]), str(exc).split(': ', 1)[1]) from None


#: How long `Tracing.shutdown` waits for the final flush when the latest export failed, seconds.
UNREACHABLE_FLUSH_S = 0.25
#: How long an export in flight may take at shutdown before it is given up (it is given up at once
#: once its exporter logged a failure or a retry since it began: it is waiting out a backoff).
#: A slow collector (TLS over a cellular link) answers within this; a dead one never does.
SLOW_EXPORT_S = 1.0

#: time.monotonic() of the latest warning or error an OTLP exporter logged (a refused or failed
#: export, "retrying in ..."); written by the filter on their loggers (`_Throttle`).
_exporter_trouble_mono = [float('-inf')]


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


class _DroppingBatchSpanProcessor(BatchSpanProcessor):
    """The SDK's BatchSpanProcessor, except that a span arriving at a full queue is counted and
    dropped here. The SDK would log "Queue full, dropping Span." for every such span (a LogRecord is
    built before its duplicate filter discards it), which made each span ~4x dearer exactly when the
    collector is dead. Reads the SDK's queue (1.45: `_batch_processor._queue`); if a later SDK
    moves it, this falls back to the SDK's own behaviour (the dead-collector test then fails on
    `dropped_spans`)."""

    def __init__(self, exporter: SpanExporter, max_queue_size: int, **kwargs: Any) -> None:
        super().__init__(exporter, max_queue_size=max_queue_size, **kwargs)
        self._queue = getattr(getattr(self, '_batch_processor', None), '_queue', None)
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
        return self._provider is not None

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


def setup_tracing(config: TracingConfig, resource_attributes: Optional[Mapping[str, str]] = None) -> Tracing:
    """A `Tracing` for one node. Resource: OTEL_RESOURCE_ATTRIBUTES (config.resource_attributes),
    then `resource_attributes` (ros.node.name, ros.node.namespace, ros.domain_id: facts of the
    process win), then service.name and host.name (unless given). Disabled: a NoOpTracer."""
    if not config.enabled:
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
