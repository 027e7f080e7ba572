"""An instrumented inference node's monitoring parameters: schema and validation (no ROS imports).

The same schema serves a team's own node (declared under a prefix, `liquid_edge.` by default, by
`InferenceMonitor.declare`) and our `liquid_inference`, which declares these names unprefixed
beside its own. Every error is one line naming the parameter as the user wrote it, prefix
included (`core.params` conventions).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

from ..core.params import (ConfigError, ParamSpec, endpoint_params, int_range, non_negative,
                           positive, read_params, unknown_names)

#: The metrics port of an instrumented node when its parameters do not say (liquid_inference: 9110).
DEFAULT_METRICS_PORT = 9111
#: Prefix of the monitoring parameters on a team's own node.
DEFAULT_PREFIX = 'liquid_edge.'


def _ratio_or_unset(v: float) -> Optional[str]:
    return None if v == -1.0 or 0.0 <= v <= 1.0 else f'must be in [0, 1] (or -1: from OTEL_*), got {v}'


def _protocol(v: str) -> Optional[str]:
    return None if v in ('', 'grpc', 'http/protobuf') else \
        f"must be grpc or http/protobuf (or empty), got '{v}'"


def _static_watts(v: float) -> Optional[str]:
    return None if v >= 0 or v == -1.0 else f'must be >= 0 (or -1: default), got {v}'


def monitor_params(default_port: int = DEFAULT_METRICS_PORT) -> Tuple[ParamSpec, ...]:
    """The monitoring parameters, unprefixed, with `metrics_port` defaulting to `default_port`."""
    return (
        ParamSpec('latency_budget', 'double', 0.005,
                  'Callback latency p95 above which the latency status is WARN, seconds.', positive),
        ParamSpec('control_period', 'double', 0.0,
                  'Deadline of one callback, seconds; 0 = the node\'s own (its control rate), '
                  'else the smoothed interval between callbacks.', non_negative),
        ParamSpec('input_timeout', 'double', 0.0,
                  'Seconds without usable (finite) input after which the input is stale (ERROR, '
                  'counted, the node\'s stale hooks run); 0 = the node\'s default, else 1 s.',
                  non_negative),
        ParamSpec('drift_window', 'integer', 200, 'Inputs averaged by the drift score.',
                  int_range(1, 1_000_000)),
        ParamSpec('drift_warn', 'double', 3.0,
                  'Input drift (mean |z-score| against the training statistics) for WARN; 0 = none.',
                  non_negative),
        ParamSpec('ground_truth.max_age', 'double', 0.5,
                  'Ground truth older than this is not scored against (liquid_edge_model_accuracy '
                  'is then absent), seconds.', positive),
        ParamSpec('accuracy.tolerance', 'double', 0.05,
                  'An output is correct when within this of the truth (output units).', positive),
        ParamSpec('accuracy.window', 'integer', 400, 'Outputs the accuracy is computed over.',
                  int_range(1, 1_000_000)),
        ParamSpec('accuracy.warn', 'double', 0.85, 'Accuracy below which the status is WARN.',
                  non_negative),
        ParamSpec('energy.joules_per_mac', 'double', 0.0,
                  'MAC-count energy model when RAPL is unreadable, joules per multiply-accumulate; '
                  '0 = the energy module\'s default.', non_negative),
        ParamSpec('energy.static_watts', 'double', -1.0,
                  'Static power of the MAC-count model, watts; -1 = the energy module\'s default.',
                  _static_watts),
        ParamSpec('tracing.enabled', 'bool', True,
                  'OpenTelemetry spans per callback (OTEL_SDK_DISABLED=true also turns them off).'),
        ParamSpec('tracing.endpoint', 'string', '', 'OTLP endpoint; empty = OTEL_EXPORTER_OTLP_* '
                  'or the OTLP default.'),
        ParamSpec('tracing.protocol', 'string', '', 'grpc or http/protobuf; empty = from OTEL_*.',
                  _protocol),
        ParamSpec('tracing.sampling_ratio', 'double', -1.0,
                  'Share of callbacks traced besides the anomalies (head sampling), 0..1; -1 = from '
                  'OTEL_TRACES_SAMPLER(_ARG).', _ratio_or_unset),
        ParamSpec('tracing.service_name', 'string', '', 'service.name; empty = OTEL_SERVICE_NAME '
                  'or liquid_edge_ros_monitor.'),
        ParamSpec('tracing.slow_threshold', 'double', 0.0,
                  'A callback slower than this is always traced (reason slow), seconds; 0 = '
                  'latency_budget.', non_negative),
        ParamSpec('tracing.startup_traces', 'integer', 10,
                  'The first callbacks after start that are always traced (reason startup).',
                  int_range(0, 1_000_000)),
        ParamSpec('tracing.max_anomalies_per_s', 'double', 20.0,
                  'Most always-kept traces (error, deadline, slow, startup) per second; the rest '
                  'are counted as dropped.', positive),
        ParamSpec('json_logging', 'bool', False,
                  'Log the monitor\'s Python logger (and ours) as JSON lines carrying the trace id '
                  'of the callback being run.'),
        ParamSpec('update_period', 'double', 1.0,
                  'How often metrics, drift and power are refreshed, seconds.', positive),
        *endpoint_params(default_port),
    )


MONITOR_PARAMS: Tuple[ParamSpec, ...] = monitor_params()


@dataclass(frozen=True)
class MonitorConfig:
    """Validated monitoring parameters. `input_timeout` and `control_period` 0 mean "the node's
    default" (`InferenceMonitor` takes those as arguments)."""

    latency_budget: float = 0.005
    control_period: float = 0.0
    input_timeout: float = 0.0
    drift_window: int = 200
    drift_warn: float = 3.0
    truth_max_age: float = 0.5
    accuracy_tolerance: float = 0.05
    accuracy_window: int = 400
    accuracy_warn: float = 0.85
    joules_per_mac: float = 0.0
    static_watts: float = -1.0
    tracing: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # TracingConfig overrides
    slow_threshold: float = 0.0      # 0 = latency_budget
    startup_traces: int = 10
    max_anomalies_per_s: float = 20.0
    json_logging: bool = False
    update_period: float = 1.0
    metrics_port: int = DEFAULT_METRICS_PORT
    metrics_address: str = '127.0.0.1'
    robot: str = 'localhost'


def parse_monitor_config(values: Mapping[str, Any], hostname: str = 'localhost',
                         specs: Iterable[ParamSpec] = MONITOR_PARAMS) -> MonitorConfig:
    """Validate unprefixed parameter values into a `MonitorConfig`, or raise `ConfigError`."""
    v = read_params(tuple(specs), values)
    # tracing.enabled true (its default) defers to OTEL_SDK_DISABLED; false turns tracing off.
    tracing = {'enabled': None if v['tracing.enabled'] else False,
               'endpoint': v['tracing.endpoint'],
               'protocol': v['tracing.protocol'], 'service_name': v['tracing.service_name'],
               'sampling_ratio': None if v['tracing.sampling_ratio'] < 0
               else v['tracing.sampling_ratio']}
    return MonitorConfig(
        latency_budget=v['latency_budget'], control_period=v['control_period'],
        input_timeout=v['input_timeout'], drift_window=v['drift_window'],
        drift_warn=v['drift_warn'], truth_max_age=v['ground_truth.max_age'],
        accuracy_tolerance=v['accuracy.tolerance'], accuracy_window=v['accuracy.window'],
        accuracy_warn=v['accuracy.warn'], joules_per_mac=v['energy.joules_per_mac'],
        static_watts=v['energy.static_watts'], tracing=tracing,
        slow_threshold=v['tracing.slow_threshold'], startup_traces=v['tracing.startup_traces'],
        max_anomalies_per_s=v['tracing.max_anomalies_per_s'], json_logging=v['json_logging'],
        update_period=v['update_period'], metrics_port=v['metrics_port'],
        metrics_address=v['metrics_address'], robot=v['robot'] or hostname)


def prefixed(specs: Iterable[ParamSpec], prefix: str) -> Tuple[ParamSpec, ...]:
    """The specs with `prefix` on their names (what a team's node declares)."""
    return tuple(dataclasses.replace(s, name=prefix + s.name) for s in specs)


def parse_prefixed(values: Mapping[str, Any], prefix: str, given: Iterable[str] = (),
                   hostname: str = 'localhost',
                   specs: Iterable[ParamSpec] = MONITOR_PARAMS) -> MonitorConfig:
    """Validate the `prefix`ed values a node declared; an unknown name under the prefix, or a bad
    value, raises `ConfigError` naming the parameter with its prefix."""
    specs = tuple(specs)
    mine = [n for n in given if n.startswith(prefix)]
    unknown = unknown_names(mine, (prefix + s.name for s in specs))
    if unknown:
        raise ConfigError(unknown[0], 'unknown parameter (check its spelling and nesting)')
    plain: Dict[str, Any] = {k[len(prefix):]: v for k, v in values.items() if k.startswith(prefix)}
    try:
        return parse_monitor_config(plain, hostname, specs)
    except ConfigError as exc:
        raise ConfigError(prefix + exc.parameter,
                          str(exc).split(': ', 1)[1]) from None
