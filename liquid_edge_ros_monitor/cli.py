"""`liquid-edge-monitor`: run the monitor nodes without `ros2 launch`.

    liquid-edge-monitor demo [--duration S] [--metrics-port P]    robot, controller, monitors, live table
    liquid-edge-monitor run --params-file FILE [--duration S] [--live]
    liquid-edge-monitor lnn-run --model M.npz --inputs X.npy [--timespans T.npy] --output Y.npy
    liquid-edge-monitor agent --remote-write-url URL [--robot R] [--ca-file F] [--username U
                              --password-file F] [--storage-path DIR]     Prometheus agent (fleets)

`run` hosts topic_monitor, node_monitor and liquid_inference (those with a section in the file) in
one process on one executor; each reads its own `<node name>: ros__parameters:` section, exactly as
under `ros2 launch`, and serves metrics on its own `metrics_port` (equal ports share one endpoint).
`demo` runs sim_robot and liquid_inference in processes of their own and the two monitors here.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml

from .agent import AgentError

PROG = 'liquid-edge-monitor'


class UsageError(Exception):
    """A one-line problem with the command line or a file it names."""


def check_params_file(path: str) -> Tuple[Path, Dict[str, Any]]:
    """Fail early, in one line naming the file, on what rcl would reject less clearly; return the
    path and the parsed file."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f'{path}: params file not found')
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise UsageError(f'{path}: cannot read params file: {exc.strerror}') from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, 'problem_mark', None)
        where = f' at line {mark.line + 1}' if mark is not None else ''
        raise UsageError(f'{path}: not valid YAML{where}') from None
    if not isinstance(data, dict) or not any(
            isinstance(v, dict) and 'ros__parameters' in v for v in data.values()):
        raise UsageError(f"{path}: no '<node name>: ros__parameters:' section")
    return p, data


def _positive(text: str) -> float:
    v = float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f'must be > 0, got {text}')
    return v


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split('\n')[0])
    sub = ap.add_subparsers(dest='command', required=True)
    demo = sub.add_parser('demo', help='simulated robot, monitors, inference node, live table, '
                                       'metrics')
    demo.add_argument('--duration', type=_positive, help='stop after S seconds (default: Ctrl-C)')
    demo.add_argument('--metrics-port', type=int, default=9108,
                      help='Prometheus port of the topic monitor; node_monitor and liquid_inference '
                           'use the next two (default 9108-9110; 0 = any free ports)')
    demo.add_argument('--metrics-address', default='127.0.0.1')
    demo.add_argument('--no-live', action='store_true', help='no live table (logs only)')
    run = sub.add_parser('run', help='run the nodes that have a section in a params file')
    run.add_argument('--params-file', required=True, help='ros__parameters YAML')
    run.add_argument('--duration', type=_positive, help='stop after S seconds (default: Ctrl-C)')
    run.add_argument('--live', action='store_true', help='print the live table')
    from .lnn.run import add_arguments as lnn_run_arguments
    lnn_run_arguments(sub.add_parser('lnn-run', help='run an input sequence through an LNN model file'))
    from .agent import add_arguments as agent_arguments
    agent_arguments(sub.add_parser('agent', help='the robot\'s Prometheus agent: scrape the three '
                                                 'exporters, remote-write to a central server'))
    return ap


#: The nodes `run` and `demo` can host, in start order (the network compiles before it subscribes).
NODE_NAMES = ('topic_monitor', 'node_monitor', 'liquid_inference')


def _node_class(name: str) -> Any:
    if name == 'topic_monitor':
        from .topics.node import TopicMonitor
        return TopicMonitor
    if name == 'node_monitor':
        from .graph.node import NodeMonitor
        return NodeMonitor
    from .inference.node import LiquidInference
    return LiquidInference


def nodes_in_file(path: Path, data: Dict[str, Any]) -> List[str]:
    """The hosted nodes that have their own section in the parsed params file (`/**/name`,
    `name`, `/ns/name`), in start order."""
    names = {str(k).rstrip('/').rsplit('/', 1)[-1] for k in data if isinstance(data[k], dict)}
    found = [n for n in NODE_NAMES if n in names]
    if not found:
        raise UsageError(f'{path}: no section for any of {", ".join(NODE_NAMES)} '
                         "(e.g. '/**/topic_monitor: ros__parameters:')")
    return found


def _run_nodes(names: List[str], ros_args: List[str], duration: Optional[float],
               live_header: Optional[str], overrides: Optional[Dict[str, List[Any]]] = None) -> int:
    """Host `names` in this process on one executor; each reads its section of the params file."""
    import rclpy
    from .core.params import ConfigError
    from .core.runner import run_nodes
    from .live_view import LiveView
    from .lnn import ModelError
    rclpy.init(args=['--ros-args', *ros_args])
    nodes: List[Any] = []
    try:
        for name in names:
            try:
                nodes.append(_node_class(name)(
                    parameter_overrides=(overrides or {}).get(name, [])))
            except (ConfigError, ModelError, OSError) as exc:
                print(f'{PROG}: error: {name}: {exc}', file=sys.stderr)
                return 2
        if live_header is not None:
            ports = ', '.join(f'{n.get_name()} {n.metrics_port}' for n in nodes
                              if n.metrics_port is not None) or 'off'
            live = LiveView(header=live_header.format(ports=ports))
            tail = _diagnostics_tail('liquid_inference:')
            monitor = next((n for n in nodes if hasattr(n, 'reports')), None)
            if monitor is not None:
                monitor.create_timer(1.0, lambda: live.show(monitor.reports(),
                                                            _footer(nodes, tail)))
            nodes.append(tail)
        run_nodes(nodes, duration)
        return 0
    finally:
        for n in reversed(nodes):
            n.destroy_node()
        rclpy.try_shutdown()


def _diagnostics_tail(prefix: str) -> Any:
    """A node keeping the latest /diagnostics statuses whose names start with `prefix` (the live
    view shows nodes of other processes, e.g. the inference node, this way)."""
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.node import Node

    class Tail(Node):
        def __init__(self) -> None:
            super().__init__('liquid_edge_live_view')
            self.latest: Dict[str, Any] = {}
            self.create_subscription(DiagnosticArray, '/diagnostics', self._on, 10)

        def _on(self, msg: Any) -> None:
            for st in msg.status:
                if st.name.startswith(prefix) or f'/{prefix}' in st.name:
                    self.latest[st.name] = st

    return Tail()


def _footer(nodes: List[Any], tail: Any) -> str:
    """Lines under the table: expected nodes up, and the inference node's own statuses."""
    from .core.levels import LEVEL_NAMES
    lines = []
    for n in nodes:
        if hasattr(n, 'tracker'):
            expected = [s for s in n.tracker.nodes.values() if s.expected]
            down = [s.name for s in expected if not s.up]
            lines.append(f'nodes: {sum(s.up for s in expected)}/{len(expected)} expected up'
                         + (f' (down: {", ".join(down)})' if down else '')
                         + f', {n.tracker.discovered()} in the graph')
    for name, st in sorted(tail.latest.items()):
        lines.append(f'{name} {LEVEL_NAMES[st.level[0]]} {st.message}')
    return '\n'.join(lines)


def cmd_run(args: argparse.Namespace) -> int:
    path, data = check_params_file(args.params_file)
    names = nodes_in_file(path, data)
    header = f'liquid-edge-monitor run {path} | metrics: {{ports}}' if args.live else None
    return _run_nodes(names, ['--params-file', str(path)], args.duration, header)


def cmd_demo(args: argparse.Namespace) -> int:
    from rclpy.parameter import Parameter
    from .core.share import config_file
    # Network rule: the demo's DDS discovery never leaves this host.
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    base = args.metrics_port
    params = str(config_file('demo.yaml'))
    # The robot and its controller run in processes of their own, as under ros2 launch: the
    # controller's JAX work must not share the monitors' interpreter lock, or the monitors would
    # measure themselves. One metrics endpoint per node: config/prometheus/prometheus.yml.
    children = [
        subprocess.Popen([sys.executable, '-m', 'liquid_edge_ros_monitor.sim_robot', '--ros-args',
                          '--params-file', str(config_file('sim_robot.yaml'))],
                         env=os.environ.copy(), stdin=subprocess.DEVNULL),
        subprocess.Popen([sys.executable, '-m', 'liquid_edge_ros_monitor.inference.node',
                          '--ros-args', '--params-file', params,
                          '-p', f'metrics_port:={base + 2 if base else 0}',
                          '-p', f'metrics_address:={args.metrics_address}'],
                         env=os.environ.copy(), stdin=subprocess.DEVNULL),
    ]
    domain = os.environ.get('ROS_DOMAIN_ID', '0')
    header = None if args.no_live else (
        f'liquid-edge-monitor demo | metrics on http://{args.metrics_address}: {{ports}}'
        + (f', liquid_inference {base + 2}' if base else '')
        + f' | /diagnostics on ROS_DOMAIN_ID={domain} | Ctrl-C to stop')
    overrides = {name: [Parameter('metrics_port', value=base + i if base else 0),
                        Parameter('metrics_address', value=args.metrics_address)]
                 for i, name in enumerate(NODE_NAMES[:2])}
    try:
        return _run_nodes(list(NODE_NAMES[:2]), ['--params-file', params], args.duration,
                          header, overrides)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        for child in children:
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == 'lnn-run':
            from .lnn.run import lnn_run
            return lnn_run(args)
        if args.command == 'agent':
            from .agent import cmd_agent
            return cmd_agent(args)
        return {'demo': cmd_demo, 'run': cmd_run}[args.command](args)
    except (UsageError, FileNotFoundError, AgentError) as exc:
        print(f'{PROG}: error: {exc}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
