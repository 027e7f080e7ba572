"""Mistakes a user's type checker must catch through the instrumentation API: each line marked
`# expect: <code>` gets exactly that mypy error, and no other line gets one
(test_instrument_types.py)."""
from typing import List

from rclpy.node import Node

from liquid_edge_ros_monitor.instrument import InferenceMonitor, monitor_inference


class Controller(Node):
    def __init__(self) -> None:
        super().__init__('controller')
        self.monitor = InferenceMonitor(self, 'cfc')  # expect: arg-type
        self.on_input = self.monitor.callback(self.step)
        self.on_input([1.0])  # expect: call-arg
        fresh: str = self.monitor.inputs([1.0])  # expect: assignment

    def step(self, features: List[float], stamp_ns: int) -> float:
        return 1.0

    @monitor_inference('monitor')
    def decorated(self, features: List[float]) -> int:
        return len(features)


Controller().decorated()  # expect: call-arg
