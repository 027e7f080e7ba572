"""OpenTelemetry tracing configuration from the standard `OTEL_*` variables, with overrides from
ROS parameters (no ROS imports, no SDK objects: only values are read and checked here).

Environment handling follows the OpenTelemetry specification (SDK environment variables and OTLP
exporter configuration): a signal-specific endpoint (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is used
as it is; the base endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`) gets `v1/traces` appended for
http/protobuf; defaults are http://localhost:4317 (grpc) and http://localhost:4318/v1/traces
(http/protobuf). Every invalid value raises `ValueError` with one line naming the variable or the
parameter.

Unlike the SDK, no exporter is made when no endpoint is given (neither an override nor an
`OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT`): `export` is then False and traces are counted, not sent.
A robot without a collector does not retry towards localhost:4317 for ever.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any, Dict, Mapping, Optional
from urllib.parse import unquote, urlparse

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
    export: bool = True              # False: no endpoint was given; traces are counted only

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
        export = True
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
            export = False

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
        raw_attrs = get('OTEL_RESOURCE_ATTRIBUTES')
        if raw_attrs is not None:
            attrs = parse_resource_attributes('OTEL_RESOURCE_ATTRIBUTES', raw_attrs)
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
            return cls(enabled=enabled, export=export, endpoint=endpoint, protocol=protocol,
                       sampling_ratio=ratio,
                       service_name=service_name, export_timeout_s=timeout_s, parent_based=parent_based,
                       resource_attributes=attrs, **extra)
        except ValueError as exc:  # a field check: name it as the parameter it came from
            raise _problem(param(str(exc).split(':', 1)[0]), str(exc).split(': ', 1)[1]) from None
