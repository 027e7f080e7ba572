"""Instrumentation for a team's own inference node: the public API (docs/INSTRUMENT.md).

    from liquid_edge_ros_monitor.instrument import InferenceMonitor, ModelInfo

Everything liquid_inference reports about inference (tail-sampled OpenTelemetry spans with their
reasons, latency histograms with exemplars, drift, accuracy, non-finite inputs and outputs,
deadline misses, input staleness, model info, the `model|latency|inputs|outputs` statuses on
`/diagnostics`, JSON logs with trace ids), for any rclpy node, under the same metric names.

The names below are the promise (semantic versioning of the package applies to them); the
modules behind them may change.
"""
from ..core.params import ConfigError
from .config import DEFAULT_METRICS_PORT, DEFAULT_PREFIX, MonitorConfig
from .model_info import ModelInfo
from .monitor import InferenceMonitor, monitor_inference

__all__ = ['InferenceMonitor', 'ModelInfo', 'monitor_inference', 'MonitorConfig', 'ConfigError',
           'DEFAULT_PREFIX', 'DEFAULT_METRICS_PORT']
