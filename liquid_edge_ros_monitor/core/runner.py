"""Running nodes: one executor for any number of nodes, and the `main()` every executable shares.

`main` follows the ROS 2 Python convention (rclpy.init/shutdown around the node's life) and turns a
start-up problem the node reports as a one-line exception into that line on stderr and exit code 2.
"""
from __future__ import annotations

import sys
from typing import Callable, List, Optional, Tuple, Type

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.task import Future


def run_nodes(nodes: List[Node], duration: Optional[float] = None) -> None:
    """Spin `nodes` until Ctrl-C, shutdown, or `duration` seconds."""
    executor = SingleThreadedExecutor()
    for n in nodes:
        executor.add_node(n)
    try:
        if duration is None:
            executor.spin()
        else:
            executor.spin_until_future_complete(Future(), timeout_sec=duration)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        # Ctrl-C shuts the context down under a running take (rclpy then fails to convert the
        # half-taken message): that is a stop, not a failure. While the context is up, it is one.
        if rclpy.ok():
            raise
    finally:
        executor.shutdown(timeout_sec=1.0)


def node_main(name: str, make_node: Callable[[], Node],
              errors: Tuple[Type[BaseException], ...], args: Optional[List[str]] = None) -> int:
    """rclpy.init, build the node, spin until Ctrl-C, clean up; 2 with one line on bad start-up."""
    rclpy.init(args=args)
    try:
        node = make_node()
    except errors as exc:
        print(f'{name}: error: {exc}', file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    try:
        run_nodes([node])
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
