"""A team's node using the instrumentation API as docs/INSTRUMENT.md shows: a type checker
accepts it, and sees each instrumented callback with the signature the user wrote
(test_instrument_types.py)."""
from typing import List

from rclpy.node import Node

from liquid_edge_ros_monitor.instrument import InferenceMonitor, ModelInfo, monitor_inference


class Controller(Node):
    def __init__(self) -> None:
        super().__init__('controller')
        self.monitor = InferenceMonitor(self, ModelInfo('cfc', framework='torch'),
                                        input_topic='imu/data', deadline_s=0.01)
        self.on_input = self.monitor.callback(self.step)

    def step(self, features: List[float], stamp_ns: int) -> float:
        with self.monitor.stage('forward'):
            fresh: bool = self.monitor.inputs(features, received_ns=stamp_ns)
        self.monitor.outputs([1.0])
        return 1.0 if fresh else 0.0

    @monitor_inference('monitor')
    def decorated(self, features: List[float]) -> int:
        return len(features)


def use(c: Controller) -> float:
    return c.on_input([0.5], 0) + c.decorated([0.5])
