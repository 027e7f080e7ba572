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
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from .agent import AgentError

PROG = 'liquid-edge-monitor'


class UsageError(Exception):
    """A one-line problem with the command line or a file it names."""


def check_params_file(path: str) -> Tuple[Path, Dict[str, Any]]:
    """Fail early, in one line naming the file, on what rcl would reject less clearly; return the
    path and the parsed file."""
    from .core.params_file import ParamsFileError, load_params_file
    p = Path(path)
    try:
        data = load_params_file(path)
    except ParamsFileError as exc:
        raise UsageError(str(exc)) from None
    if not isinstance(data, dict) or not any(
            isinstance(v, dict) and 'ros__parameters' in v for v in data.values()):
        raise UsageError(f"{path}: no '<node name>: ros__parameters:' section")
    return p, data


def _positive(text: str) -> float:
    v = float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f'must be > 0, got {text}')
    return v


def _port_base(text: str) -> int:
    """The demo's first metrics port: 0 (three free ports) or one with two more after it (a
    negative one used to switch the topic monitor off and give the others ports 0 and 1)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'must be an integer, got {text!r}') from None
    if not (v == 0 or 1 <= v <= 65533):
        raise argparse.ArgumentTypeError(f'must be 0 (free ports) or in [1, 65533], got {v}')
    return v


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split('\n')[0])
    sub = ap.add_subparsers(dest='command', required=True)
    demo = sub.add_parser('demo', help='simulated robot, monitors, inference node, live table, '
                                       'metrics')
    demo.add_argument('--duration', type=_positive, help='stop after S seconds (default: Ctrl-C)')
    demo.add_argument('--metrics-port', type=_port_base, default=9108,
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
               live_header: Optional[str], overrides: Optional[Dict[str, List[Any]]] = None,
               stop: Any = None, on_stop: Optional[Callable[[], None]] = None,
               other_ports: Optional[Callable[[], List[str]]] = None) -> int:
    """Host `names` in this process on one executor; each reads its section of the params file.

    0 on a stop signal (however many, also during start-up; `core/stop.py`), 2 with one line on
    bad input. `on_stop` runs as soon as the nodes stop spinning, before their clean-up.
    `other_ports`: 'name port' entries of nodes in other processes, for the live header (read
    at each refresh: such a port is known only once that process has bound it)."""
    from .core.stop import StartupInterrupted, StopSignals
    stop = stop or StopSignals().install()    # before the slow imports: no traceback from them
    from .core.params import ConfigError
    from .core.runner import destroy_all, init, init_error, rclpy_errors, run_nodes
    from .live_view import LiveView
    from .lnn import ModelError
    nodes: List[Any] = []
    try:
        with stop.interruptible():
            try:
                init(['--ros-args', *ros_args])
            except rclpy_errors() as exc:
                print(f'{PROG}: error: {init_error(exc)}', file=sys.stderr)
                return 2
            for name in names:
                try:
                    nodes.append(_node_class(name)(
                        parameter_overrides=(overrides or {}).get(name, [])))
                except (ConfigError, ModelError, OSError) as exc:
                    print(f'{PROG}: error: {name}: {exc}', file=sys.stderr)
                    return 2
                except rclpy_errors() as exc:
                    print(f'{PROG}: error: {name}: {init_error(exc)}', file=sys.stderr)
                    return 2
            if live_header is not None:
                own = [f'{n.get_name()} {n.metrics_port}' for n in nodes
                       if n.metrics_port is not None]

                def header() -> str:
                    ports = own + (other_ports() if other_ports is not None else [])
                    return live_header.format(ports=', '.join(ports) or 'off')
                live = LiveView(header=header())
                tail = _diagnostics_tail('liquid_inference:')
                monitor = next((n for n in nodes if hasattr(n, 'reports')), None)
                if monitor is not None:
                    topics_node = monitor

                    def show() -> None:
                        live.header = header()
                        live.show(topics_node.reports(), _footer(nodes, tail))
                    monitor.create_timer(1.0, show)
                nodes.append(tail)
        run_nodes(nodes, duration, stop)
        return 0
    except StartupInterrupted:
        return 0
    finally:
        if on_stop is not None:
            on_stop()
        destroy_all(nodes)


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


def cmd_run(args: argparse.Namespace, stop: Any = None) -> int:
    path, data = check_params_file(args.params_file)
    names = nodes_in_file(path, data)
    header = f'liquid-edge-monitor run {path} | metrics: {{ports}}' if args.live else None
    return _run_nodes(names, ['--params-file', str(path)], args.duration, header, stop=stop)


def cmd_demo(args: argparse.Namespace, stop: Any = None) -> int:
    from rclpy.parameter import Parameter
    from .core.share import config_file
    from .core.stop import StopSignals
    stop = stop or StopSignals().install()
    # Network rule: the demo's DDS discovery never leaves this host.
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    base = args.metrics_port
    params = str(config_file('demo.yaml'))
    # The robot and its controller run in processes of their own, as under ros2 launch: the
    # controller's JAX work must not share the monitors' interpreter lock, or the monitors would
    # measure themselves. One metrics endpoint per node: config/prometheus/prometheus.yml.
    children: List[subprocess.Popen] = []
    try:
        entry = [sys.executable, '-m', 'liquid_edge_ros_monitor.entry']
        for cmd in ([*entry, 'sim_robot', '--ros-args',
                     '--params-file', str(config_file('sim_robot.yaml'))],
                    [*entry, 'liquid_inference', '--ros-args', '--params-file', params,
                     '-p', f'metrics_port:={base + 2 if base else 0}',
                     '-p', f'metrics_address:={args.metrics_address}']):
            if stop.requested():
                return 0
            # Born ignoring SIGINT until their entry point installs its handlers: a signal in
            # the interpreter's first moments is lost, not a traceback (_stop_children repeats).
            children.append(subprocess.Popen(cmd, env=os.environ.copy(),
                                             stdin=subprocess.DEVNULL,
                                             preexec_fn=_ignore_sigint))
        domain = os.environ.get('ROS_DOMAIN_ID', '0')
        header = None if args.no_live else (
            f'liquid-edge-monitor demo | metrics on http://{args.metrics_address}: {{ports}}'
            f' | /diagnostics on ROS_DOMAIN_ID={domain} | Ctrl-C to stop')
        overrides = {name: [Parameter('metrics_port', value=base + i if base else 0),
                            Parameter('metrics_address', value=args.metrics_address)]
                     for i, name in enumerate(NODE_NAMES[:2])}
        inference = children[1]
        found: List[int] = []

        def inference_port() -> List[str]:
            """The inference node's port: the one asked for, or (--metrics-port 0) the one its
            process bound, once it has (it loads and compiles its model first)."""
            if base:
                return [f'liquid_inference {base + 2}']
            if not found:
                port = listening_port(inference.pid, args.metrics_address)
                if port is not None:
                    found.append(port)
            return [f'liquid_inference {found[0] if found else "(starting)"}']
        return _run_nodes(list(NODE_NAMES[:2]), ['--params-file', params], args.duration,
                          header, overrides, stop, on_stop=lambda: _interrupt(children),
                          other_ports=inference_port)
    finally:
        _stop_children(children)


def listening_port(pid: int, address: str) -> Optional[int]:
    """The TCP port process `pid` listens on at `address` (a node's metrics endpoint in a
    process of its own, bound to a free port), or None while it has none."""
    import psutil
    try:
        conns = psutil.Process(pid).net_connections(kind='tcp')
    except (psutil.Error, OSError):
        return None
    for c in conns:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.ip == address:
            return c.laddr.port
    return None


def _interrupt(children: List[subprocess.Popen]) -> None:
    """SIGINT to each child still running, as a launcher does; they stop while we clean up.

    They may have had the same signal already (a terminal's Ctrl-C signals the group): they
    ignore repeats."""
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop_children(children: List[subprocess.Popen], timeout_s: float = 10.0) -> None:
    """SIGINT every 0.1 s until each child is gone (repeats are harmless; one sent in a child's
    first moments, while it still ignores SIGINT, is not lost), then SIGKILL after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while any(c.poll() is None for c in children) and time.monotonic() < deadline:
        _interrupt(children)
        for c in children:
            try:
                # Short: a child still ignoring SIGINT (its first moments) is signalled again
                # soon after its handlers are in (a stop during start-up took 2.2 s at 0.5 s).
                c.wait(max(0.0, min(0.1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                break
    for c in children:
        if c.poll() is None:
            c.kill()
            c.wait()


def main(argv: Optional[List[str]] = None) -> int:
    # First, before the slow imports (JAX in the parser): a stop signal is a request, never a
    # traceback, from here on (`core/stop.py`).
    from .core.stop import StopSignals
    stop = StopSignals().install()
    args = _parser().parse_args(argv)
    try:
        if args.command == 'lnn-run':
            # An offline run has no loop that looks at the request: Ctrl-C interrupts it.
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT
                              else signal.SIG_DFL)
            if stop.requested():
                return 0
            from .lnn.run import lnn_run
            return lnn_run(args)
        if args.command == 'agent':
            if stop.requested():        # stopped before prometheus took over: nothing to start
                return 0
            from .agent import cmd_agent
            return cmd_agent(args)      # execs prometheus, whose own handlers take the signals
        return {'demo': cmd_demo, 'run': cmd_run}[args.command](args, stop)
    except (UsageError, FileNotFoundError, AgentError) as exc:
        print(f'{PROG}: error: {exc}', file=sys.stderr)
        return 2
    finally:
        if args.command != 'lnn-run':
            stop.finish()


if __name__ == '__main__':
    sys.exit(main())
