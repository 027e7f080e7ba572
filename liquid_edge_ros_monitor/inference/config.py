"""The inference node's parameters: schema and validation into an `InferenceConfig` (no ROS imports).

Same conventions as the other nodes (`core.params`): one schema, one-line errors naming the parameter. Message fields are
given as dotted paths (``angular_velocity.z``), so any message type can feed the network and any
type can carry the command; the node checks the paths against the real types at start-up.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Sequence, Tuple

from ..core.params import (ConfigError, ParamSpec, int_range, non_negative, positive, read_params,
                           topic_name, unknown_names)
from ..instrument.config import MonitorConfig, monitor_params, parse_monitor_config

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


#: liquid_inference's own parameters; the monitoring ones (latency budget, drift, accuracy,
#: tracing, metrics endpoint, ...) are the instrumentation's (`instrument.config`), declared
#: unprefixed beside these.
NODE_PARAMS: Tuple[ParamSpec, ...] = (
    ParamSpec('model_path', 'string', '',
              'Model .npz (ours or an ncps import); empty = the shipped demo model. May be set at '
              'run time: the model is checked at once (a bad one is refused with the reason and '
              'the running one stays), prepared in the background (compiled only when its '
              'architecture is new to the process) and swapped in between two callbacks from a '
              'reset state.', dynamic=True),
    ParamSpec('shadow_model_path', 'string', '',
              'A candidate model that runs on the same inputs after each command, compared with '
              'the active model, never commanding (shadow status, liquid_edge_shadow_* metrics); '
              'empty = none. May be set at run time; set model_path to it to promote it.',
              dynamic=True),
    ParamSpec('shadow.tolerance', 'double', 0.05,
              'A shadow output agrees with the active one within this (output units).', positive),
    ParamSpec('shadow.max_share', 'double', 0.5,
              'Share of the callback deadline the active callback and a shadow step may use '
              'together; a shadow that would not fit skips the input (counted).',
              lambda v: None if 0 < v <= 1 else f'must be in (0, 1], got {v}'),
    ParamSpec('shadow.window', 'integer', 400, 'Outputs the shadow agreement is computed over.',
              int_range(1, 1_000_000)),
    ParamSpec('rollback.window', 'double', 30.0,
              'Seconds after a model swap during which the previous model keeps running as a '
              'shadow and the new one is swapped back on a breach (non-finite outputs or failed '
              'steps, callback p95 above latency_budget, accuracy below rollback.min_accuracy, '
              'agreement below rollback.min_agreement); 0 = no automatic rollback.',
              non_negative),
    ParamSpec('rollback.min_accuracy', 'double', 0.85,
              'Accuracy against fresh ground truth below which the new model is rolled back.',
              non_negative),
    ParamSpec('rollback.min_agreement', 'double', 0.0,
              'Share of the new model\'s outputs within shadow.tolerance of the previous model\'s '
              'below which it is rolled back; 0 = divergence is not a reason.',
              lambda v: None if 0 <= v <= 1 else f'must be in [0, 1], got {v}'),
    ParamSpec('rollback.min_samples', 'integer', 200,
              'Callbacks after a swap before latency is judged; accuracy and agreement count only '
              'after them (the new model\'s state warms up from zero) and are judged once as many '
              'more have been counted.', int_range(1, 1_000_000)),
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
    ParamSpec('dt_default', 'double', 0.0,
              'Elapsed time of the first step and of inputs without a header, seconds; 0 = the '
              'period the model was trained with (or 1.0 if unknown).', non_negative),
    ParamSpec('dt_max', 'double', 1.0,
              'Longest elapsed time given to one step (after a pause), seconds.', positive),
    ParamSpec('on_non_finite', 'string', 'zero',
              'Command published when the output is NaN/Inf: zero, or hold (the last good one).',
              _choice('zero', 'hold')),
    ParamSpec('on_input_stale', 'string', 'zero',
              'Command while the input is stale (no usable input for input_timeout): zero, hold '
              '(the last good one before the outage), or stop (publish nothing). Published at '
              'control_rate, or once without one.', _choice('zero', 'hold', 'stop')),
    ParamSpec('max_step_failures', 'integer', 10,
              'Network steps that raise, in a row, after which the node publishes the safe '
              'command and exits with status 1 (each one before: safe command, ERROR, counted).',
              int_range(1, 1_000_000)),
    ParamSpec('ground_truth.topic', 'string', '',
              'Topic with the true command, for liquid_edge_model_accuracy; empty = none.',
              _optional_topic),
    ParamSpec('ground_truth.type', 'string', 'nav_msgs/msg/Odometry', 'Type of the truth topic.',
              _type),
    ParamSpec('ground_truth.fields', 'string_array',
              ['twist.twist.linear.x', 'twist.twist.angular.z'],
              'Field paths of the truth, one per output.', _optional_paths),
    ParamSpec('qos_depth', 'integer', 10, 'History depth of the input subscription.',
              int_range(1, 10_000)),
)

#: The monitoring parameters as liquid_inference describes them (its defaults differ in words).
_OWN_WORDS = {
    'control_period': 'Deadline of one callback, seconds; 0 = 1/control_rate, or the input period.',
    'input_timeout': 'Input older than this, or not usable (non-finite), is stale and the '
                     'controller stops acting on it (state reset, on_input_stale command, ERROR), '
                     'seconds; 0 = 10 expected input periods (dt_default, else the model\'s '
                     'training period; at least 0.1 s), or 1 s if neither is known.',
}
MONITORING_PARAMS: Tuple[ParamSpec, ...] = tuple(
    dataclasses.replace(s, description=_OWN_WORDS[s.name]) if s.name in _OWN_WORDS else s
    for s in monitor_params(default_port=9110))
INFERENCE_PARAMS: Tuple[ParamSpec, ...] = NODE_PARAMS + MONITORING_PARAMS


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
    dt_default: float
    dt_max: float
    hold_on_non_finite: bool
    on_input_stale: str
    max_step_failures: int
    truth_topic: str
    truth_type: str
    truth_fields: Tuple[str, ...]
    qos_depth: int
    shadow_model_path: str
    shadow_tolerance: float
    shadow_max_share: float
    shadow_window: int
    rollback_window: float
    rollback_min_accuracy: float
    rollback_min_agreement: float
    rollback_min_samples: int
    monitor: MonitorConfig           # the monitoring parameters (instrument.config)


def unknown_parameters(given: Iterable[str]) -> list:
    return unknown_names(given, (s.name for s in INFERENCE_PARAMS))


def parse_inference_config(values: Mapping[str, Any], hostname: str = 'localhost',
                           given: Optional[Iterable[str]] = None) -> InferenceConfig:
    """Validate raw parameter values into an `InferenceConfig`, or raise `ConfigError`."""
    if given is not None:
        unknown = unknown_parameters(given)
        if unknown:
            raise ConfigError(unknown[0], 'unknown parameter (check its spelling and nesting)')
    v = read_params(NODE_PARAMS, values)
    monitor = parse_monitor_config(values, hostname, MONITORING_PARAMS)
    if v['ground_truth.topic'] and len(v['ground_truth.fields']) != len(v['outputs']):
        raise ConfigError('ground_truth.fields',
                          f"has {len(v['ground_truth.fields'])} paths for "
                          f"{len(v['outputs'])} outputs")
    return InferenceConfig(
        model_path=v['model_path'], input_topic=v['input_topic'], input_type=v['input_type'],
        features=tuple(v['features']), best_effort=v['input_reliability'] == 'best_effort',
        output_topic=v['output_topic'], output_type=v['output_type'],
        outputs=tuple(v['outputs']), output_frame_id=v['output_frame_id'],
        control_rate=v['control_rate'], dt_default=v['dt_default'], dt_max=v['dt_max'],
        hold_on_non_finite=v['on_non_finite'] == 'hold', on_input_stale=v['on_input_stale'],
        max_step_failures=v['max_step_failures'], truth_topic=v['ground_truth.topic'],
        truth_type=v['ground_truth.type'], truth_fields=tuple(v['ground_truth.fields']),
        qos_depth=v['qos_depth'], shadow_model_path=v['shadow_model_path'],
        shadow_tolerance=v['shadow.tolerance'], shadow_max_share=v['shadow.max_share'],
        shadow_window=v['shadow.window'], rollback_window=v['rollback.window'],
        rollback_min_accuracy=v['rollback.min_accuracy'],
        rollback_min_agreement=v['rollback.min_agreement'],
        rollback_min_samples=v['rollback.min_samples'], monitor=monitor)
