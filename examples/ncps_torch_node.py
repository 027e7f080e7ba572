"""A team's own liquid-network controller: an rclpy node running an ncps (torch) CfC on IMU data,
instrumented with liquid_edge_ros_monitor.

The lines ending in `# [monitor]` are the whole instrumentation (the test counts them): without
them this is a plain rclpy node, and none of them is inside the model code. With them the node
gets tail-sampled OpenTelemetry spans (its stages as children), latency histograms with exemplars,
drift, non-finite input and output counts, deadline misses, input staleness, model info, and the
`model|latency|inputs|outputs` statuses on /diagnostics, under the metric names the shipped
alerts and dashboards use. See docs/INSTRUMENT.md.

It reports the features and the command as the Python floats it holds anyway, not as tensors: a
tensor would be read again (`tolist()`) right after the forward has evicted the caches, about
2.3 us more per callback on a 2-core VM (docs/BENCHMARKS.md).

    python3 examples/ncps_torch_node.py --ros-args -p model_path:=cfc.pt \\
        -p liquid_edge.metrics_port:=9111

Parameters: `model_path` (a state_dict saved with torch.save; empty: an untrained network, seed
0), and the monitor's under `liquid_edge.` (metrics port, tracing endpoint, ...).
"""
import signal
import sys
import threading

import rclpy
import torch
from geometry_msgs.msg import Twist
from ncps.torch import CfC
from ncps.wirings import AutoNCP
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Imu

from liquid_edge_ros_monitor.instrument import InferenceMonitor, ModelInfo  # [monitor]


class CfcController(Node):
    """IMU (yaw rate, forward and lateral acceleration) in, a velocity command out."""

    def __init__(self, **kwargs):
        super().__init__('ncps_controller', **kwargs)
        path = self.declare_parameter('model_path', '').value
        torch.manual_seed(0)
        self.rnn = CfC(3, AutoNCP(16, 2), batch_first=True)
        if path:
            self.rnn.load_state_dict(torch.load(path))
        self.rnn.eval()
        self.h = None
        self.pub = self.create_publisher(Twist, 'cmd_vel', 10)
        info = (ModelInfo.from_file(path, framework='torch') if path  # [monitor]
                else ModelInfo('ncps_cfc_untrained', framework='torch'))  # [monitor]
        self.monitor = InferenceMonitor(self, info, input_topic='imu/data')  # [monitor]
        self.create_subscription(Imu, 'imu/data', self.monitor.callback(self.on_imu),  # [monitor]
                                 qos_profile_sensor_data)

    def on_imu(self, msg):
        with self.monitor.stage('preprocess'):  # [monitor]
            features = [msg.angular_velocity.z, msg.linear_acceleration.x,
                        msg.linear_acceleration.y]
            x = torch.tensor([[features]], dtype=torch.float32)
        if not self.monitor.inputs(features):  # [monitor]
            return  # [monitor]
        with self.monitor.stage('forward'), torch.no_grad():  # [monitor]
            y, self.h = self.rnn(x, self.h)
        command = y[0, -1].tolist()
        self.monitor.outputs(command)  # [monitor]
        cmd = Twist()
        cmd.linear.x, cmd.angular.z = command
        self.pub.publish(cmd)


def main(args=None):
    # Stop between two spins, not inside one: rclpy's own SIGINT/SIGTERM handlers shut the
    # context down under a running callback or wait, and rclpy.spin then ends in one of several
    # tracebacks (exit 1 on about one stop in ten here; ros2/rclpy#1081).
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    node = CfcController()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.1)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
