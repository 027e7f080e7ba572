"""What each node started by the launch files gets from their arguments (pure: no `launch` import).

The launch files declare the arguments listed here and hand their values, as the strings launch
resolved, to `node_parameters`; its result is the node's `parameters=` list exactly as launch_ros
takes it (a params file path, then dicts of overrides). Keeping the mapping here makes every
advertised argument act in one place, and lets the tests start the real nodes with what a launch
would give them where the `launch` package itself is not installed (it is not on PyPI).

Arguments (all strings, '' = as the params file says):
- `params_file`: the topic monitor's parameters (monitor.launch.py) or the inference node's
  (inference.launch.py); in demo.launch.py, one file with a section for each of the three nodes;
- `node_params_file`: the node monitor's parameters (demo: the same as `params_file` by default);
- `metrics_port_base`: the topic monitor's metrics port; node_monitor takes the next one and
  liquid_inference the one after (the ports `config/prometheus/prometheus.yml` scrapes are
  9108-9110). 0: each node picks a free port; -1: no metrics endpoints. Two robots' stacks on
  one host, or a port in use, then need no copied YAML;
- `metrics_address`: the address every metrics endpoint binds to (0.0.0.0 to be scraped from
  another host);
- `use_sim_time`: 'true' or 'false'.
"""
from __future__ import annotations

import ipaddress
from typing import Any, Dict, List, Mapping, Union

#: The metrics port of each node relative to `metrics_port_base` (9108, 9109, 9110 by default).
PORT_OFFSETS: Dict[str, int] = {'topic_monitor': 0, 'node_monitor': 1, 'liquid_inference': 2}
#: Which params-file argument configures each node.
PARAMS_FILE_ARG: Dict[str, str] = {'topic_monitor': 'params_file',
                                   'node_monitor': 'node_params_file',
                                   'liquid_inference': 'params_file'}
METRICS_ARGS = ('metrics_port_base', 'metrics_address')
METRICS_PORT_BASE_HELP = (
    "Metrics port of topic_monitor; node_monitor and liquid_inference take the next two "
    "(0: each a free port, -1: no endpoints; empty: as the params files say).")
METRICS_ADDRESS_HELP = ("Address every metrics endpoint binds to, e.g. 0.0.0.0 to be scraped "
                        "from another host (empty: as the params files say).")

Parameters = List[Union[str, Dict[str, Any]]]


class LaunchArgumentError(ValueError):
    """A launch argument with a value no node could take (one line naming it)."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"launch argument '{name}': {problem}")


def metrics_overrides(node: str, args: Mapping[str, str]) -> Dict[str, Any]:
    """`metrics_port` and `metrics_address` for `node` from `metrics_port_base` and
    `metrics_address` (each only when given, so a params file's own values stay otherwise)."""
    out: Dict[str, Any] = {}
    base_text = str(args.get('metrics_port_base', '') or '').strip()
    if base_text:
        try:
            base = int(base_text)
        except ValueError:
            raise LaunchArgumentError('metrics_port_base',
                                      f"must be an integer, got '{base_text}'") from None
        if not (base in (-1, 0) or 1 <= base <= 65535 - max(PORT_OFFSETS.values())):
            raise LaunchArgumentError(
                'metrics_port_base', f'must be -1 (off), 0 (free ports) or in '
                f'[1, {65535 - max(PORT_OFFSETS.values())}], got {base}')
        out['metrics_port'] = base + PORT_OFFSETS[node] if base > 0 else base
    address = str(args.get('metrics_address', '') or '').strip()
    if address:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise LaunchArgumentError('metrics_address',
                                      f"must be an IP address, got '{address}'") from None
        out['metrics_address'] = address
    return out


def use_sim_time(args: Mapping[str, str]) -> bool:
    text = str(args.get('use_sim_time', 'false')).strip().lower()
    if text not in ('true', 'false'):
        raise LaunchArgumentError('use_sim_time', f"must be 'true' or 'false', got '{text}'")
    return text == 'true'


def node_parameters(node: str, args: Mapping[str, str]) -> Parameters:
    """The `parameters=` list of `node` (topic_monitor, node_monitor, liquid_inference) for the
    launch arguments `args`: its params file, then `use_sim_time` and the metrics overrides (later
    entries win, as in launch_ros)."""
    params_file = str(args.get(PARAMS_FILE_ARG[node], '') or '')
    if not params_file:
        raise LaunchArgumentError(PARAMS_FILE_ARG[node], f'no parameters file for {node}')
    return [params_file, {'use_sim_time': use_sim_time(args), **metrics_overrides(node, args)}]


# ---- aggregator:=true (diagnostic_aggregator, for rqt_robot_monitor) ------------------------------

#: The aggregator's package and executable (ros/diagnostics, C++: on a ROS install
#: `ros-<distro>-diagnostic-aggregator`; not on PyPI). Its node is called `analyzers`, the root
#: key of config/analyzers.yaml.
AGGREGATOR_PACKAGE = 'diagnostic_aggregator'
AGGREGATOR_EXECUTABLE = 'aggregator_node'
AGGREGATOR_NODE = 'analyzers'
AGGREGATOR_HELP = ("'true' to also start diagnostic_aggregator with analyzers_file: it publishes "
                   '/diagnostics_agg, which rqt_robot_monitor shows (rqt_runtime_monitor reads '
                   '/diagnostics and needs nothing more). Where the package is not installed, one '
                   'line says so and the rest starts.')
ANALYZERS_FILE_HELP = 'The aggregator\'s analyzers (default: config/analyzers.yaml).'


def aggregator_installed() -> bool:
    """Whether the ament index (AMENT_PREFIX_PATH) has diagnostic_aggregator."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_prefix
    except ImportError:
        return False
    try:
        get_package_prefix(AGGREGATOR_PACKAGE)
    except (PackageNotFoundError, KeyError, ValueError, OSError):
        return False
    return True


def aggregator_plan(requested: str, installed: bool) -> Union[None, str, Dict[str, Any]]:
    """What `aggregator:=<requested>` starts: None (not asked), the one line to log (asked but
    not installed: the monitors start anyway), or the aggregator node's launch_ros arguments
    (without `parameters`, the analyzers file the launch file resolves)."""
    if requested.strip().lower() not in ('true', '1', 'yes', 'on'):
        return None
    if not installed:
        return (f'aggregator:=true: {AGGREGATOR_PACKAGE} is not installed '
                f'(ros-<distro>-diagnostic-aggregator), so /diagnostics_agg is not published and '
                'rqt_robot_monitor shows nothing; rqt_runtime_monitor reads /diagnostics. '
                'Starting the monitors without it.')
    return {'package': AGGREGATOR_PACKAGE, 'executable': AGGREGATOR_EXECUTABLE,
            'name': AGGREGATOR_NODE}
