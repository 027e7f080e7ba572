"""The inference node's parameters: schema and validation into an `InferenceConfig` (no ROS imports).

Same conventions as the other nodes (`core.params`): one schema, one-line errors naming the parameter. Message fields are
given as dotted paths (``angular_velocity.z``), so any message type can feed the network and any
type can carry the command; the node checks the paths against the real types at start-up.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Sequence, Tuple

from ..core.params import (ConfigError, ParamSpec, endpoint_params, int_range, non_negative, positive,
                     read_params, topic_name, unknown_names)

_PATH = re.compile(r'[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*\Z')
_TYPE = re.compile(r'[A-Za-z_][A-Za-z0-9_]*/msg/[A-Za-z][A-Za-z0-9]*\Z')


def _paths(v: Sequence[str]) -> Optional[str]:
    if not v:
        return 'must list at least one field path, e.g. angular_velocity.z'
    for p in v:
        if not _PATH.match(p):
            return f"'{p}' is not a field path such as linear_acceleration.x"
    return None


def _optional_paths(v: Sequence[str]) -> Optional[str]:
    return _paths(v) if v else None


def _type(v: str) -> Optional[str]:
    return None if _TYPE.match(v) else f"'{v}' is not a message type such as sensor_msgs/msg/Imu"


def _optional_topic(v: str) -> Optional[str]:
    return topic_name(v) if v else None


def _choice(*options: str):
    def check(v: str) -> Optional[str]:
        return None if v in options else f"must be one of {', '.join(options)}, got '{v}'"
    return check


def _ratio_or_unset(v: float) -> Optional[str]:
    return None if v == -1.0 or 0.0 <= v <= 1.0 else f'must be in [0, 1] (or -1: from OTEL_*), got {v}'


INFERENCE_PARAMS: Tuple[ParamSpec, ...] = (
    ParamSpec('model_path', 'string', '',
              'Model .npz (ours or an ncps import); empty = the shipped demo model.'),
    ParamSpec('input_topic', 'string', 'imu/data', 'Sensor topic the network reads.', topic_name),
    ParamSpec('input_type', 'string', 'sensor_msgs/msg/Imu', 'Type of input_topic.', _type),
    ParamSpec('features', 'string_array',
              ['angular_velocity.z', 'linear_acceleration.x', 'linear_acceleration.y'],
              'Field paths of the input message fed to the network, in the model\'s input order.',
              _paths),
    ParamSpec('input_reliability', 'string', 'best_effort',
              'QoS reliability of the input subscription (best_effort also receives from reliable '
              'publishers).', _choice('best_effort', 'reliable')),
    ParamSpec('output_topic', 'string', 'cmd_vel', 'Topic of the command.', topic_name),
    ParamSpec('output_type', 'string', 'geometry_msgs/msg/Twist', 'Type of output_topic.', _type),
    ParamSpec('outputs', 'string_array', ['linear.x', 'angular.z'],
              'Field paths of the command set from the network outputs, in order.', _paths),
    ParamSpec('output_frame_id', 'string', '',
              'header.frame_id of a stamped command (an output_type with a header, e.g. '
              'geometry_msgs/msg/TwistStamped); empty = the input\'s frame_id. Its header.stamp is '
              'always the input\'s, as for derived data, so a monitor\'s header latency on the '
              'command topic is the sensor-to-command latency.'),
    ParamSpec('control_rate', 'double', 0.0,
              'Steps per second from the latest input; 0 = one step per input message.',
              non_negative),
    ParamSpec('control_period', 'double', 0.0,
              'Deadline of one callback, seconds; 0 = 1/control_rate, or the input period.',
              non_negative),
    ParamSpec('latency_budget', 'double', 0.005,
              'Callback latency p95 above which the status is WARN, seconds.', positive),
    ParamSpec('dt_default', 'double', 0.0,
              'Elapsed time of the first step and of inputs without a header, seconds; 0 = the '
              'period the model was trained with (or 1.0 if unknown).', non_negative),
    ParamSpec('dt_max', 'double', 1.0,
              'Longest elapsed time given to one step (after a pause), seconds.', positive),
    ParamSpec('on_non_finite', 'string', 'zero',
              'Command published when the output is NaN/Inf: zero, or hold (the last good one).',
              _choice('zero', 'hold')),
    ParamSpec('input_timeout', 'double', 0.0,
              'Input older than this is stale and the controller stops acting on it (state reset, '
              'on_input_stale command, ERROR), seconds; 0 = 10 expected input periods (dt_default, '
              'else the model\'s training period; at least 0.1 s), or 1 s if neither is known.',
              non_negative),
    ParamSpec('on_input_stale', 'string', 'zero',
              'Command while the input is stale: zero, hold (the last good one), or stop '
              '(publish nothing). Published at control_rate, or once without one.',
              _choice('zero', 'hold', 'stop')),
    ParamSpec('max_step_failures', 'integer', 10,
              'Network steps that raise, in a row, after which the node publishes the safe '
              'command and exits with status 1 (each one before: safe command, ERROR, counted).',
              int_range(1, 1_000_000)),
    ParamSpec('drift_window', 'integer', 200, 'Inputs averaged by the drift score.',
              int_range(1, 1_000_000)),
    ParamSpec('drift_warn', 'double', 3.0,
              'Input drift (mean |z-score| against the training statistics) for WARN; 0 = none.',
              non_negative),
    ParamSpec('ground_truth.topic', 'string', '',
              'Topic with the true command, for liquid_edge_model_accuracy; empty = none.',
              _optional_topic),
    ParamSpec('ground_truth.type', 'string', 'nav_msgs/msg/Odometry', 'Type of the truth topic.',
              _type),
    ParamSpec('ground_truth.fields', 'string_array',
              ['twist.twist.linear.x', 'twist.twist.angular.z'],
              'Field paths of the truth, one per output.', _optional_paths),
    ParamSpec('ground_truth.max_age', 'double', 0.5,
              'Ground truth older than this is not scored against (liquid_edge_model_accuracy is '
              'then absent), seconds.', positive),
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
              lambda v: None if v >= 0 or v == -1.0 else f'must be >= 0 (or -1: default), got {v}'),
    ParamSpec('tracing.enabled', 'bool', True,
              'OpenTelemetry spans per input (OTEL_SDK_DISABLED=true also turns them off).'),
    ParamSpec('tracing.endpoint', 'string', '', 'OTLP endpoint; empty = OTEL_EXPORTER_OTLP_* '
              'or the OTLP default.'),
    ParamSpec('tracing.protocol', 'string', '', 'grpc or http/protobuf; empty = from OTEL_*.',
              lambda v: None if v in ('', 'grpc', 'http/protobuf') else
              f"must be grpc or http/protobuf (or empty), got '{v}'"),
    ParamSpec('tracing.sampling_ratio', 'double', -1.0,
              'Share of inputs traced, 0..1; -1 = from OTEL_TRACES_SAMPLER(_ARG).', _ratio_or_unset),
    ParamSpec('tracing.service_name', 'string', '', 'service.name; empty = OTEL_SERVICE_NAME or '
              'liquid_edge_ros_monitor.'),
    ParamSpec('tracing.slow_threshold', 'double', 0.0,
              'A callback slower than this is always traced (reason slow), seconds; 0 = '
              'latency_budget.', non_negative),
    ParamSpec('tracing.startup_traces', 'integer', 10,
              'The first callbacks after start that are always traced (reason startup).',
              int_range(0, 1_000_000)),
    ParamSpec('tracing.max_anomalies_per_s', 'double', 20.0,
              'Most always-kept traces (error, deadline, slow, startup) per second; the rest are '
              'counted as dropped.', positive),
    ParamSpec('json_logging', 'bool', False,
              'Log our Python loggers as JSON lines (with trace_id/span_id inside spans).'),
    ParamSpec('qos_depth', 'integer', 10, 'History depth of the input subscription.',
              int_range(1, 10_000)),
    ParamSpec('update_period', 'double', 1.0,
              'How often metrics and power are refreshed, seconds.', positive),
    *endpoint_params(9110),
)



@dataclass(frozen=True)
class InferenceConfig:
    model_path: str
    input_topic: str
    input_type: str
    features: Tuple[str, ...]
    best_effort: bool
    output_topic: str
    output_type: str
    outputs: Tuple[str, ...]
    output_frame_id: str
    control_rate: float
    control_period: float
    latency_budget: float
    dt_default: float
    dt_max: float
    hold_on_non_finite: bool
    input_timeout: float
    on_input_stale: str
    max_step_failures: int
    drift_window: int
    drift_warn: float
    truth_topic: str
    truth_type: str
    truth_fields: Tuple[str, ...]
    truth_max_age: float
    accuracy_tolerance: float
    accuracy_window: int
    accuracy_warn: float
    joules_per_mac: float
    static_watts: float
    tracing: Mapping[str, Any]       # overrides for tracing.TracingConfig.from_env
    slow_threshold: float            # 0 = latency_budget
    startup_traces: int
    max_anomalies_per_s: float
    json_logging: bool
    qos_depth: int
    update_period: float
    metrics_port: int
    metrics_address: str
    robot: str


def unknown_parameters(given: Iterable[str]) -> list:
    return unknown_names(given, (s.name for s in INFERENCE_PARAMS))


def parse_inference_config(values: Mapping[str, Any], hostname: str = 'localhost',
                           given: Optional[Iterable[str]] = None) -> InferenceConfig:
    """Validate raw parameter values into an `InferenceConfig`, or raise `ConfigError`."""
    if given is not None:
        unknown = unknown_parameters(given)
        if unknown:
            raise ConfigError(unknown[0], 'unknown parameter (check its spelling and nesting)')
    v = read_params(INFERENCE_PARAMS, values)
    if v['ground_truth.topic'] and len(v['ground_truth.fields']) != len(v['outputs']):
        raise ConfigError('ground_truth.fields',
                          f"has {len(v['ground_truth.fields'])} paths for "
                          f"{len(v['outputs'])} outputs")
    # tracing.enabled true (its default) defers to OTEL_SDK_DISABLED; false turns tracing off.
    tracing = {'enabled': None if v['tracing.enabled'] else False,
               'endpoint': v['tracing.endpoint'],
               'protocol': v['tracing.protocol'], 'service_name': v['tracing.service_name'],
               'sampling_ratio': None if v['tracing.sampling_ratio'] < 0
               else v['tracing.sampling_ratio']}
    return InferenceConfig(
        model_path=v['model_path'], input_topic=v['input_topic'], input_type=v['input_type'],
        features=tuple(v['features']), best_effort=v['input_reliability'] == 'best_effort',
        output_topic=v['output_topic'], output_type=v['output_type'],
        outputs=tuple(v['outputs']), output_frame_id=v['output_frame_id'],
        control_rate=v['control_rate'],
        control_period=v['control_period'], latency_budget=v['latency_budget'],
        dt_default=v['dt_default'], dt_max=v['dt_max'],
        hold_on_non_finite=v['on_non_finite'] == 'hold', input_timeout=v['input_timeout'],
        on_input_stale=v['on_input_stale'], max_step_failures=v['max_step_failures'],
        drift_window=v['drift_window'],
        drift_warn=v['drift_warn'], truth_topic=v['ground_truth.topic'],
        truth_type=v['ground_truth.type'], truth_fields=tuple(v['ground_truth.fields']),
        truth_max_age=v['ground_truth.max_age'],
        accuracy_tolerance=v['accuracy.tolerance'], accuracy_window=v['accuracy.window'],
        accuracy_warn=v['accuracy.warn'], joules_per_mac=v['energy.joules_per_mac'],
        static_watts=v['energy.static_watts'], tracing=tracing,
        slow_threshold=v['tracing.slow_threshold'], startup_traces=v['tracing.startup_traces'],
        max_anomalies_per_s=v['tracing.max_anomalies_per_s'], json_logging=v['json_logging'],
        qos_depth=v['qos_depth'], update_period=v['update_period'],
        metrics_port=v['metrics_port'], metrics_address=v['metrics_address'],
        robot=v['robot'] or hostname)
