"""The executables' entry points: stop signals first, then the (slow) imports of the node.

Importing rclpy, numpy and JAX takes a second or more; a Ctrl-C in that time used to end in a
`KeyboardInterrupt` traceback. Each entry point installs `core/stop.py`'s handlers before it
imports its node's module, so a signal at any moment of start-up is a clean exit 0.

    python -m liquid_edge_ros_monitor.entry topic_monitor --ros-args ...
"""
from __future__ import annotations

import sys
from importlib import import_module
from typing import List, Optional

from .core.stop import StopSignals

#: executable -> module whose `main(args, stop)` runs it
EXECUTABLES = {
    'sim_robot': 'liquid_edge_ros_monitor.sim_robot',
    'topic_monitor': 'liquid_edge_ros_monitor.topics.node',
    'node_monitor': 'liquid_edge_ros_monitor.graph.node',
    'liquid_inference': 'liquid_edge_ros_monitor.inference.node',
}


def run(executable: str, args: Optional[List[str]] = None) -> int:
    stop = StopSignals().install()
    return import_module(EXECUTABLES[executable]).main(args, stop=stop)


def sim_robot() -> int:
    return run('sim_robot')


def topic_monitor() -> int:
    return run('topic_monitor')


def node_monitor() -> int:
    return run('node_monitor')


def liquid_inference() -> int:
    return run('liquid_inference')


if __name__ == '__main__':
    if len(sys.argv) < 2 or sys.argv[1] not in EXECUTABLES:
        print(f'usage: python -m liquid_edge_ros_monitor.entry {{{",".join(EXECUTABLES)}}} '
              '[--ros-args ...]', file=sys.stderr)
        sys.exit(2)
    sys.exit(run(sys.argv[1]))
