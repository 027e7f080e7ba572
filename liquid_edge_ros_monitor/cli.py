"""`liquid-edge-monitor`: run the monitor nodes without `ros2 launch`.

    liquid-edge-monitor demo [--duration S] [--metrics-port P]    simulated robot + monitor + live table
    liquid-edge-monitor run --params-file FILE [--duration S] [--live]
    liquid-edge-monitor lnn-run --model M.npz --inputs X.npy [--timespans T.npy] --output Y.npy

`run` hosts the monitor nodes in one process (one executor, one metrics endpoint); each node reads
its own `<node name>: ros__parameters:` section of the file, exactly as under `ros2 launch`.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, List, Optional

import yaml

PROG = 'liquid-edge-monitor'


class UsageError(Exception):
    """A one-line problem with the command line or a file it names."""


def check_params_file(path: str) -> Path:
    """Fail early, in one line naming the file, on what rcl would reject less clearly."""
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
    return p


def _positive(text: str) -> float:
    v = float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f'must be > 0, got {text}')
    return v


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split('\n')[0])
    sub = ap.add_subparsers(dest='command', required=True)
    demo = sub.add_parser('demo', help='simulated robot, topic monitor, live table, metrics')
    demo.add_argument('--duration', type=_positive, help='stop after S seconds (default: Ctrl-C)')
    demo.add_argument('--metrics-port', type=int, default=9108,
                      help='Prometheus port (default 9108; 0 = any free port)')
    demo.add_argument('--metrics-address', default='127.0.0.1')
    demo.add_argument('--no-live', action='store_true', help='no live table (logs only)')
    run = sub.add_parser('run', help='run the monitor nodes from a params file')
    run.add_argument('--params-file', required=True, help='ros__parameters YAML')
    run.add_argument('--duration', type=_positive, help='stop after S seconds (default: Ctrl-C)')
    run.add_argument('--live', action='store_true', help='print the live table')
    from .lnn.run import add_arguments as lnn_run_arguments
    lnn_run_arguments(sub.add_parser('lnn-run', help='run an input sequence through an LNN model file'))
    return ap


def _spin(nodes: List[Any], duration: Optional[float], live: Any = None) -> None:
    from .topic_monitor import run_nodes
    if live is not None:
        monitor = nodes[0]
        monitor.create_timer(1.0, lambda: live.show(monitor.reports()))
    run_nodes(nodes, duration)


def _run_monitor(ros_args: List[str], duration: Optional[float], live_header: Optional[str],
                 overrides: Optional[List[Any]] = None) -> int:
    import rclpy
    from .config import ConfigError
    from .live_view import LiveView
    from .topic_monitor import TopicMonitor
    rclpy.init(args=['--ros-args', *ros_args])
    nodes: List[Any] = []
    try:
        try:
            nodes.append(TopicMonitor(parameter_overrides=overrides or []))
        except (ConfigError, OSError) as exc:
            print(f'{PROG}: error: topic_monitor: {exc}', file=sys.stderr)
            return 2
        port = nodes[0].metrics_port
        live = None if live_header is None else LiveView(header=live_header.format(
            port=port if port is not None else 'off'))
        _spin(nodes, duration, live)
        return 0
    finally:
        for n in nodes:
            n.destroy_node()
        rclpy.try_shutdown()


def cmd_run(args: argparse.Namespace) -> int:
    path = check_params_file(args.params_file)
    header = f'liquid-edge-monitor run {path} | metrics port {{port}}' if args.live else None
    return _run_monitor(['--params-file', str(path)], args.duration, header)


def cmd_demo(args: argparse.Namespace) -> int:
    from rclpy.parameter import Parameter
    from .share import config_file
    # Network rule: the demo's DDS discovery never leaves this host.
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    robot = subprocess.Popen(
        [sys.executable, '-m', 'liquid_edge_ros_monitor.sim_robot', '--ros-args',
         '--params-file', str(config_file('sim_robot.yaml'))],
        env=os.environ.copy(), stdin=subprocess.DEVNULL)
    domain = os.environ.get('ROS_DOMAIN_ID', '0')
    header = None if args.no_live else (
        f'liquid-edge-monitor demo | metrics: http://{args.metrics_address}:{{port}}'
        f'/metrics | /diagnostics on ROS_DOMAIN_ID={domain} | Ctrl-C to stop')
    overrides = [Parameter('metrics_port', value=args.metrics_port),
                 Parameter('metrics_address', value=args.metrics_address)]
    try:
        return _run_monitor(['--params-file', str(config_file('demo.yaml'))], args.duration,
                            header, overrides)
    finally:
        if robot.poll() is None:
            robot.send_signal(signal.SIGINT)
            try:
                robot.wait(10)
            except subprocess.TimeoutExpired:
                robot.kill()
                robot.wait()


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == 'lnn-run':
            from .lnn.run import lnn_run
            return lnn_run(args)
        return {'demo': cmd_demo, 'run': cmd_run}[args.command](args)
    except (UsageError, FileNotFoundError) as exc:
        print(f'{PROG}: error: {exc}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
