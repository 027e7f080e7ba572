"""Where the inference callback's time goes: each stage of `LiquidInference._on_input` timed on a
real node (the shipped model, tracing off, no metrics endpoint), interleaved over rounds.

    .venv/bin/python bench/inference_profile.py [--calls 3000] [--rounds 5] [--json OUT]

Stages, in callback order: `deserialise` (what rclpy does before the callback: CDR bytes to an Imu,
outside `_on_input`), `features` (dotted-path getters into the input vector), `step` (the guarded
controller step: finiteness checks, the jitted network, the result back to numpy), `drift` (the
input-drift score), `command` (the setters into the reused command message), `publish` (rclpy
publish of it), and `callback` (the whole `_on_input`, which also holds the elapsed-time, latency
ring, deadline and counter bookkeeping). Figures are medians and p99 in microseconds.

The script imports whichever `liquid_edge_ros_monitor` its interpreter has, so the same file
profiles two checkouts side by side: run it with each checkout's `.venv/bin/python`, alternating.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from typing import Callable, Dict, List

import numpy as np

from common import cpu_model

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'      # network rule
os.environ.setdefault('ROS_DOMAIN_ID', str(150 + os.getpid() % 50))




def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--calls', type=int, default=3000, help='calls per stage per round')
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--json', help='also write the figures to this file')
    args = ap.parse_args()

    import rclpy
    from rclpy.parameter import Parameter
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Imu

    import liquid_edge_ros_monitor
    from liquid_edge_ros_monitor.inference.node import LiquidInference

    rclpy.init()
    node = LiquidInference(namespace='/profile', parameter_overrides=[
        Parameter('metrics_port', value=-1), Parameter('tracing.enabled', value=False)])
    try:
        msg = Imu()
        msg.header.frame_id = 'imu_link'
        msg.angular_velocity.z, msg.linear_acceleration.y = 0.2, 0.06
        raw = serialize_message(msg)
        x = node._x
        node.io.features(msg, x)
        y = np.asarray(node.controller.forward(x, 0.005)[0])
        out = node.io.out_msg
        stamp = [time.time_ns()]

        def callback() -> None:
            stamp[0] += 5_000_000
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp[0], 1_000_000_000)
            node._on_input(msg, {'publication_sequence_number': 1})

        def features() -> None:
            node.io.features(msg, x)

        def command() -> None:
            node.io.command(y, msg, node._now_msg)

        stages: Dict[str, Callable[[], None]] = {
            'deserialise': lambda: deserialize_message(raw, Imu),
            'features': features,
            'step': lambda: node.controller.forward(x, 0.005),
            'inputs (drift, finite)': lambda: node.monitor.inputs(x),
            'command': command,
            'publish': lambda: node._pub.publish(out),
            'callback': callback,
        }
        times: Dict[str, List[float]] = {k: [] for k in stages}
        for fn in stages.values():          # warm-up
            for _ in range(300):
                fn()
        perf = time.perf_counter
        for _ in range(args.rounds):
            for name, fn in stages.items():
                t = times[name]
                for _ in range(args.calls):
                    t0 = perf()
                    fn()
                    t.append(perf() - t0)
        result = {name: {'p50_us': float(np.median(t) * 1e6),
                         'p99_us': float(np.percentile(t, 99) * 1e6)} for name, t in times.items()}
        where = os.path.dirname(os.path.dirname(liquid_edge_ros_monitor.__file__))
        print(f'{where}; {node.model.describe()}; CPU {cpu_model()}; '
              f'{args.calls} calls x {args.rounds} rounds per stage')
        print(f'{"stage":12s} {"p50 us":>8s} {"p99 us":>8s}')
        for name, r in result.items():
            print(f'{name:12s} {r["p50_us"]:8.1f} {r["p99_us"]:8.1f}')
        if args.json:
            with open(args.json, 'w') as f:
                json.dump({'checkout': where, 'cpu': cpu_model(), 'stages': result}, f, indent=1)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
