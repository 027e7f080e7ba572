"""The node monitor's parameters: schema and validation into a `NodeMonitorConfig` (no ROS imports).

Same conventions as the other nodes (`core.params`): one schema drives declarations and checks, and
every error is one line naming the parameter. The expected nodes, the graph's ignore lists and
the host thresholds may be set at run time (`dynamic`); the disk paths and periods may not (they
are threads and timers). Thresholds follow diagnostic_common_diagnostics where it
has one (CPU warning at 90 %, disk free 5 % low / 1 % critical).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Sequence, Tuple

from ..core.levels import held_level
from ..core.params import (ConfigError, ParamSpec, endpoint_params, non_negative, patterns, positive,
                     read_params, unknown_names)

# A node name, fully qualified ('/' then namespace tokens and the name) or relative to the
# monitor's namespace (design.ros2.org).
_FQN = re.compile(r'/?([A-Za-z_][A-Za-z0-9_]*/)*[A-Za-z_][A-Za-z0-9_]*\Z')

def _node_names(v: Sequence[str]) -> Optional[str]:
    seen = set()
    for name in v:
        if not _FQN.match(name):
            return (f"'{name}' is not a node name such as '/robot1/controller' (fully qualified) "
                    "or 'controller' (in the monitor's namespace)")
        if name in seen:
            return f"'{name}' is listed twice"
        seen.add(name)
    return None


def _ratio(v: float) -> Optional[str]:
    return None if 0 <= v <= 1 else f'must be in [0, 1] (0 disables it), got {v}'


def _paths(v: Sequence[str]) -> Optional[str]:
    for p in v:
        if not p.startswith('/'):
            return f"'{p}' is not an absolute path"
    return None


#: Tool nodes left out of the node statuses by default (`tool_nodes`).
TOOL_NODES = ('(/.*)?/_ros2cli_.*', '(/.*)?/rqt_gui_(py|cpp)_node_[0-9]+',
              '(/.*)?/launch_ros_[0-9]+', '(/.*)?/liquid_edge_live_view')


NODE_PARAMS: Tuple[ParamSpec, ...] = (
    ParamSpec('expected_nodes', 'string_array', [],
              'Names of the nodes that must run, fully qualified (/robot1/driver) or relative to '
              'this node\'s namespace (driver); each missing one is ERROR. Empty (the '
              'default): no other node is required; the graph, the nodes seen in it and the '
              'host are still watched. The node monitor itself is always expected.',
              _node_names, dynamic=True),
    ParamSpec('period', 'double', 1.0, 'How often the ROS graph is checked, seconds.', positive),
    ParamSpec('startup_grace', 'double', 2.0,
              'Seconds after start-up during which a not-yet-discovered expected node is WARN '
              '(DDS discovery takes a moment), not ERROR.', non_negative, dynamic=True),
    ParamSpec('forget_after', 'double', 10.0,
              'An unexpected node gone this long leaves /diagnostics and the metrics, seconds; '
              '0 = never. Expected nodes are watched for ever.',
              non_negative, dynamic=True),
    *endpoint_params(9109),
    ParamSpec('graph.enabled', 'bool', True,
              'Check every topic for QoS incompatibility, several types, and missing publishers '
              'or subscribers.'),
    ParamSpec('graph.ignore_topics', 'string_array', ['/rosout', '/parameter_events'],
              'Regular expressions (full match) of topics the graph checks skip.', patterns, dynamic=True),
    ParamSpec('graph.ignore_nodes', 'string_array', [],
              'Regular expressions (full match on the fully qualified name) of nodes whose '
              'endpoints the graph checks skip.', patterns, dynamic=True),
    ParamSpec('host.enabled', 'bool', True, 'Report host CPU, memory, disks, temperatures, battery.'),
    ParamSpec('host.period', 'double', 2.0, 'How often host resources are sampled, seconds.',
              positive),
    ParamSpec('host.cpu_warn', 'double', 0.9, 'Total CPU usage (0..1) at which the status is WARN.',
              _ratio, dynamic=True),
    ParamSpec('host.cpu_error', 'double', 0.0, 'Total CPU usage (0..1) for ERROR; 0 = none.',
              _ratio, dynamic=True),
    ParamSpec('host.memory_warn', 'double', 0.9, 'Memory usage (0..1) for WARN; 0 = none.', _ratio, dynamic=True),
    ParamSpec('host.memory_error', 'double', 0.95, 'Memory usage (0..1) for ERROR; 0 = none.',
              _ratio, dynamic=True),
    ParamSpec('host.disk_paths', 'string_array', ['/'],
              'Paths whose file systems are checked for free space.', _paths),
    ParamSpec('host.disk_free_warn', 'double', 0.05, 'Free-space share below which a disk is WARN.',
              _ratio, dynamic=True),
    ParamSpec('host.disk_free_error', 'double', 0.01,
              'Free-space share below which a disk is ERROR.', _ratio, dynamic=True),
    ParamSpec('host.temperature_warn', 'double', 85.0,
              'Temperature of any sensor at which the status is WARN, degrees Celsius; 0 = none.',
              non_negative, dynamic=True),
    ParamSpec('host.temperature_error', 'double', 95.0,
              'Temperature of any sensor for ERROR, degrees Celsius; 0 = none.', non_negative, dynamic=True),
    ParamSpec('host.sensor_forget_after', 'double', 300.0,
              'A temperature sensor gone this long is no longer reported lost (WARN), seconds; '
              '0 = lost for ever. It is lost from its first missing reading on.', non_negative),
    ParamSpec('host.battery_warn', 'double', 0.2, 'Battery charge (0..1) below which it is WARN.',
              _ratio, dynamic=True),
    ParamSpec('host.battery_error', 'double', 0.05,
              'Battery charge (0..1) below which it is ERROR.', _ratio, dynamic=True),
    ParamSpec('tool_nodes', 'string_array', list(TOOL_NODES),
              'Regular expressions (full match on the fully qualified name) of tool nodes that '
              'get no node status nor node metrics: short-lived command-line and viewer nodes '
              "(the ros2 CLI's _ros2cli_*, rqt's rqt_gui_py_node_<pid>, ros2 launch's "
              "launch_ros_<pid>, the demo's live view). An expected node is always reported. "
              'Nodes whose name starts with "_" are hidden anyway (ROS convention).', patterns,
              dynamic=True),
    ParamSpec('host.hysteresis', 'double', 0.03,
              'A host level (CPU, memory, disk, temperature, battery) is entered at its limit and '
              'left only once the reading is back inside it by this share of it (CPU WARN at 90 '
              '%: OK again under 87.3 %), so a reading that hovers at a limit does not flap.',
              lambda v: None if 0 <= v < 0.5 else f'must be in [0, 0.5), got {v}', dynamic=True),
)



@dataclass(frozen=True)
class Band:
    """WARN / ERROR thresholds of one reading; 0 disables a level. `below` flips the direction
    (free disk, battery: lower is worse)."""

    warn: float
    error: float
    below: bool = False

    def level(self, value: float, prev: int = 0, margin: float = 0.0) -> int:
        """0 OK, 1 WARN, 2 ERROR. With `prev` (the level last time) and `margin`, hysteresis:
        a level is left only once the value is back inside its limit by `margin` of it."""
        return held_level(value, self.warn, self.error, not self.below, prev, margin,
                          at_limit=True)


@dataclass(frozen=True)
class HostConfig:
    enabled: bool = True
    period: float = 2.0
    cpu: Band = Band(0.9, 0.0)
    memory: Band = Band(0.9, 0.95)
    disk_paths: Tuple[str, ...] = ('/',)
    disk_free: Band = Band(0.05, 0.01, below=True)
    temperature: Band = Band(85.0, 95.0)
    battery: Band = Band(0.2, 0.05, below=True)
    sensor_forget_after: float = 300.0
    hysteresis: float = 0.03


@dataclass(frozen=True)
class NodeMonitorConfig:
    expected_nodes: Tuple[str, ...]
    period: float
    startup_grace: float
    forget_after: float
    metrics_port: int
    metrics_address: str
    robot: str
    graph_enabled: bool
    ignore_topics: Tuple[str, ...]
    ignore_nodes: Tuple[str, ...]
    host: HostConfig
    tool_nodes: Tuple[str, ...] = TOOL_NODES


def _band(v: Mapping[str, Any], name: str, below: bool = False) -> Band:
    warn, error = v[f'host.{name}_warn'], v[f'host.{name}_error']
    if warn and error and (error > warn if below else error < warn):
        rel = 'above' if below else 'below'
        raise ConfigError(f'host.{name}_error',
                          f'{error} is {rel} host.{name}_warn {warn}: ERROR must be the worse level')
    return Band(warn, error, below)


def unknown_parameters(given: Iterable[str]) -> list:
    return unknown_names(given, (s.name for s in NODE_PARAMS))


def resolve_node_name(name: str, namespace: str) -> str:
    """'driver' in namespace '/robot1' is '/robot1/driver'; fully qualified names stay."""
    if name.startswith('/'):
        return name
    return (namespace.rstrip('/') + '/' + name) if namespace != '/' else '/' + name


def parse_node_config(values: Mapping[str, Any], hostname: str = 'localhost',
                      given: Optional[Iterable[str]] = None,
                      namespace: str = '/') -> NodeMonitorConfig:
    """Validate raw parameter values into a `NodeMonitorConfig`, or raise `ConfigError`."""
    if given is not None:
        unknown = unknown_parameters(given)
        if unknown:
            raise ConfigError(unknown[0], 'unknown parameter (check its spelling and nesting)')
    v = read_params(NODE_PARAMS, values)
    host = HostConfig(
        enabled=v['host.enabled'], period=v['host.period'], cpu=_band(v, 'cpu'),
        memory=_band(v, 'memory'), disk_paths=tuple(dict.fromkeys(v['host.disk_paths'])),
        disk_free=_band(v, 'disk_free', below=True), temperature=_band(v, 'temperature'),
        battery=_band(v, 'battery', below=True),
        sensor_forget_after=v['host.sensor_forget_after'], hysteresis=v['host.hysteresis'])
    return NodeMonitorConfig(
        expected_nodes=tuple(dict.fromkeys(resolve_node_name(n, namespace)
                                           for n in v['expected_nodes'])),
        period=v['period'],
        startup_grace=v['startup_grace'], forget_after=v['forget_after'],
        metrics_port=v['metrics_port'], metrics_address=v['metrics_address'],
        robot=v['robot'] or hostname, graph_enabled=v['graph.enabled'],
        ignore_topics=tuple(v['graph.ignore_topics']), ignore_nodes=tuple(v['graph.ignore_nodes']),
        host=host, tool_nodes=tuple(v['tool_nodes']))
