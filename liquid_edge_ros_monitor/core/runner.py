"""Running nodes: one executor for any number of nodes, and the `main()` every executable shares.

`main` follows the ROS 2 Python convention (rclpy.init/shutdown around the node's life) and turns a
start-up problem into one line on stderr and exit code 2: the node's own one-line exceptions, a
params file rclpy cannot read (`rclpy.init` fails with a many-line RCLError), and a parameter of
the wrong type that rclpy itself owns (`-p use_sim_time:=1`).

Signals are ours, not rclpy's (`core/stop.py`): the first SIGINT or SIGTERM asks for a stop, the
loop sees it within `POLL_S`, and every later signal is ignored while the nodes clean up, so a
second Ctrl-C or ros2 launch's forwarded SIGINT never turns a clean stop into a traceback.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Callable, List, Optional, Tuple, Type

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from .params_file import ParamsFileError, check_params_files
from .stop import StartupInterrupted, StopSignals

#: How often the executor loop looks at the stop request (it wakes for work in between anyway).
POLL_S = 0.1


def init_error(exc: BaseException) -> str:
    """One line for what rclpy.init or rclpy's own parameters refused (their text spans lines)."""
    text = str(exc)
    if 'Reason: ' in text:                     # InvalidParameterValueException
        text = text.split('Reason: ', 1)[1].rpartition(': ')[0] or text
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    # RCLError: the first line is rcl's summary; the root cause (file, line) is in the lines
    # that follow, each ending with ', at <source>:<line>'.
    causes = [ln.split(', at ')[0] for ln in lines[1:] if ', at ' in ln]
    head = lines[0].split(', at ')[0] if lines else type(exc).__name__
    return ' '.join(head.split()) + ('' if not causes else f' ({causes[-1]})')


def rclpy_errors() -> Tuple[Type[BaseException], ...]:
    """Start-up exceptions of rclpy itself that mean bad input: an unreadable params file, an
    invalid `--ros-args`, a parameter of the wrong type."""
    from rclpy._rclpy_pybind11 import RCLError
    from rclpy.exceptions import ParameterException
    return (RCLError, ParameterException, ParamsFileError)


def init(args: Optional[List[str]]) -> None:
    """rclpy.init without rclpy's signal handlers (ours are in `core/stop.py`), after checking
    the params files it will read (ParamsFileError: one line naming the file)."""
    check_params_files(sys.argv if args is None else args)
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)


def run_nodes(nodes: List[Node], duration: Optional[float] = None,
              stop: Optional[StopSignals] = None) -> None:
    """Spin `nodes` until a stop signal, shutdown, or `duration` seconds."""
    executor = SingleThreadedExecutor()
    for n in nodes:
        executor.add_node(n)
    deadline = None if duration is None else time.monotonic() + duration
    try:
        while rclpy.ok() and not (stop is not None and stop.requested()):
            timeout = POLL_S
            if deadline is not None:
                timeout = min(timeout, deadline - time.monotonic())
                if timeout <= 0:
                    break
            executor.spin_once(timeout_sec=timeout)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        # The context shut down under a running take (rclpy then fails to convert the
        # half-taken message): that is a stop, not a failure. While the context is up, it is one.
        if rclpy.ok():
            raise
    finally:
        executor.shutdown(timeout_sec=1.0)


def destroy_all(nodes: List[Any]) -> None:
    """Destroy nodes (reverse order) and shut rclpy down; a failure here is one line, not a
    traceback, since the process is stopping anyway."""
    for n in reversed(nodes):
        try:
            n.destroy_node()
        except Exception as exc:   # noqa: BLE001 - stopping: report and go on
            print(f'{n.get_name()}: error while stopping: {exc!r}', file=sys.stderr)
    try:
        rclpy.try_shutdown()
    except Exception as exc:       # noqa: BLE001
        print(f'error while stopping rclpy: {exc!r}', file=sys.stderr)


def node_main(name: str, make_node: Callable[[], Node],
              errors: Tuple[Type[BaseException], ...], args: Optional[List[str]] = None,
              describe: Callable[[BaseException], str] = str,
              stop: Optional[StopSignals] = None) -> int:
    """rclpy.init, build the node, spin until a stop signal, clean up.

    0 on a stop (however many signals, also during start-up); 2 with one line on bad input.
    `stop`: handlers the entry point installed before its imports (`entry.py`).
    """
    stop = stop or StopSignals().install()
    nodes: List[Node] = []
    try:
        with stop.interruptible():
            try:
                init(args)
                nodes.append(make_node())
            except errors as exc:
                print(f'{name}: error: {describe(exc)}', file=sys.stderr)
                return 2
            except rclpy_errors() as exc:
                print(f'{name}: error: {init_error(exc)}', file=sys.stderr)
                return 2
        run_nodes(nodes, stop=stop)
    except StartupInterrupted:
        pass
    finally:
        destroy_all(nodes)
        stop.finish()
    return 0
