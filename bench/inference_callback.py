"""What tracing costs the real inference callback: `LiquidInference._on_input` on a real node (model,
features, JAX step, DDS publish), traced several ways side by side in one process.

    .venv/bin/python bench/inference_callback.py [--calls 2000] [--rate 200] [--rounds 3]

Cases: tracing off (the baseline); tail sampling with head ratio 0 (only anomalies would be kept,
and the inputs are normal: the cost every callback pays for its ids and marks); head ratio 0.1 and
1 exporting to a live OTLP receiver (grpc, in another process); head ratio 1 with the collector
dead (closed port). Each case calls the callback at `--rate` Hz (as a sensor would; 0 = back to
back) and records its duration; the cases alternate over `--rounds` rounds so machine load hits
them alike. Reported: median and p99 per callback, the median's ratio to the untraced callback,
and the traces each case kept.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from common import cpu_model, free_port as closed_port

REPO = Path(__file__).resolve().parents[1]
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'      # network rule
os.environ.setdefault('ROS_DOMAIN_ID', str(150 + os.getpid() % 50))

RECEIVER = '''
import sys
sys.path.insert(0, {test!r})
from otlp_receiver import OtlpReceiver
with OtlpReceiver('grpc') as rx:
    print(rx.endpoint, flush=True)
    sys.stdin.read()
'''






def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--calls', type=int, default=2000, help='callbacks per case per round')
    ap.add_argument('--rate', type=float, default=200.0,
                    help='callbacks per second; 0 = back to back')
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--switch-interval', type=float, default=0.0,
                    help='sys.setswitchinterval for this process, s (0 = leave the default)')
    args = ap.parse_args()
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)

    import rclpy
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Imu

    from liquid_edge_ros_monitor.inference.node import LiquidInference

    rx = subprocess.Popen([sys.executable, '-c', RECEIVER.format(test=str(REPO / 'test'))],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    live = rx.stdout.readline().strip()
    dead = f'http://127.0.0.1:{closed_port()}'
    rclpy.init()
    cases = {
        'off': {'tracing.enabled': False},
        'tail, head 0, live grpc': {'tracing.sampling_ratio': 0.0, 'tracing.endpoint': live},
        'tail, head 0.1, live grpc': {'tracing.sampling_ratio': 0.1, 'tracing.endpoint': live},
        'tail, head 1, live grpc': {'tracing.sampling_ratio': 1.0, 'tracing.endpoint': live},
        'tail, head 1, dead collector': {'tracing.sampling_ratio': 1.0, 'tracing.endpoint': dead},
    }
    nodes: Dict[str, Any] = {}
    try:
        for i, (label, params) in enumerate(cases.items()):
            overrides = [Parameter('metrics_port', value=-1)] + [
                Parameter(k, value=v) for k, v in params.items()]
            nodes[label] = LiquidInference(namespace=f'/bench{i}', parameter_overrides=overrides)
        model = nodes['off'].model
        msg = Imu()
        msg.header.frame_id = 'imu_link'
        msg.angular_velocity.z, msg.linear_acceleration.y = 0.2, 0.06
        times: Dict[str, List[float]] = {k: [] for k in cases}
        period = 1.0 / args.rate if args.rate > 0 else 0.005   # stamps: 200 Hz either way
        for r in range(args.rounds):
            for label, node in nodes.items():
                nxt = time.perf_counter()
                stamp = time.time_ns()
                for k in range(args.calls):
                    stamp += int(period * 1e9)
                    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
                    info = {'publication_sequence_number': r * args.calls + k + 1}
                    t0 = time.perf_counter()
                    node._on_input(msg, info)
                    times[label].append(time.perf_counter() - t0)
                    if args.rate > 0:
                        nxt += period
                        delay = nxt - time.perf_counter()
                        if delay > 0:
                            time.sleep(delay)   # pacing like a sensor, not synchronisation
        base = float(np.median(times['off']))
        pace = f'{args.rate:.0f} Hz' if args.rate > 0 else 'back to back'
        print(f'model: {model.describe()}; {args.calls} calls x {args.rounds} rounds, {pace}, '
              'per case')
        print(f'CPU: {cpu_model()}')
        print(f'{"case":30s} {"median us":>10s} {"p99 us":>10s} {"ratio":>7s}  traces kept')
        for label, t in times.items():
            a = np.asarray(t) * 1e6
            kept = {r: n for r, n in nodes[label].monitor.sampler.kept.items() if n}
            print(f'{label:30s} {np.median(a):10.1f} {np.percentile(a, 99):10.1f} '
                  f'{np.median(a) / (base * 1e6):7.3f}  {kept if label != "off" else ""}')
        sent = nodes['tail, head 1, live grpc'].monitor.tracing
        sent.force_flush(10.0)
        print(f'live receiver: {sent.exported_spans} spans exported, {sent.dropped_spans} dropped')
    finally:
        for n in nodes.values():
            n.destroy_node()
        rclpy.try_shutdown()
        rx.stdin.close()
        rx.wait(10)


if __name__ == '__main__':
    main()
