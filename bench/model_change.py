"""What changing the model of a running liquid_inference costs the control loop.

    .venv/bin/python bench/model_change.py [--part swap|shadow|all] [--swaps 10] [--calls 4000]

`swap`: liquid_inference (the demo model) and sim_robot (200 Hz IMU) in their own processes; this
process receives the commands and, every 3 s, sets model_path to the other of two models of the
same shape (the demo model and a copy with other weights) through the parameter service, as
`ros2 param set` does. Reported: the interval between commands in quiet stretches (p50, p99,
max) against the longest interval in the 2 s around each swap (from the request to the
installation and after), and their ratio to the quiet p99.

`shadow`: what a shadow model costs the callback: the node's own callback (`_on_input`, in this
process) called back to back with no shadow and with a candidate shadow of the same size,
alternating in blocks; median and p99 per call and the median's increase.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from common import cpu_model, interrupt_all

REPO = Path(__file__).resolve().parents[1]
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'      # network rule
os.environ.setdefault('ROS_DOMAIN_ID', str(150 + os.getpid() % 50))
sys.path.insert(0, str(REPO))


def model_pair(tmp: Path) -> List[str]:
    """The demo model and a same-shaped copy with slightly other weights (another sha256)."""
    from liquid_edge_ros_monitor.lnn import load_model, save_model
    from liquid_edge_ros_monitor.lnn.model import Model
    demo = REPO / 'models' / 'imu_velocity.npz'
    m = load_model(demo)
    t = m.tensors()
    for k in t:
        t[k] = t[k] * np.float32(1.001)
    other = tmp / 'imu_velocity_b.npz'
    save_model(Model(m.hyper, t, m.input_mean, m.input_std, m.input_names, m.output_names,
                     m.training), other)
    return [str(demo), str(other)]


def part_swap(swaps: int) -> None:
    import rclpy
    from geometry_msgs.msg import Twist
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient

    tmp = Path(tempfile.mkdtemp(prefix='model_change_'))
    models = model_pair(tmp)
    ns = '/bench_swap'
    py = sys.executable
    procs = [subprocess.Popen([py, '-m', 'liquid_edge_ros_monitor.inference.node', '--ros-args',
                               '-r', f'__ns:={ns}', '-p', 'tracing.enabled:=false',
                               '-p', 'metrics_port:=-1', '-p', 'rollback.window:=1.0',
                               '-p', f'model_path:={models[0]}'],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO),
             subprocess.Popen([py, '-m', 'liquid_edge_ros_monitor.sim_robot', '--ros-args',
                               '-r', f'__ns:={ns}', '-p', 'camera.enabled:=false',
                               '-p', 'scan.enabled:=false', '-p', 'odom.enabled:=false',
                               '-p', 'chatter.enabled:=false'],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)]
    rclpy.init()
    node = Node('bench_swap_probe', namespace=ns)
    arrivals: List[int] = []
    node.create_subscription(Twist, 'cmd_vel', lambda _m: arrivals.append(time.monotonic_ns()),
                             1000)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    client = AsyncParameterClient(node, f'{ns}/liquid_inference')
    requests: List[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(arrivals) < 400 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.wait_for_services(20), 'no parameter services'
        time.sleep(2.0)
        for i in range(swaps):
            requests.append(time.monotonic_ns())
            future = client.set_parameters([Parameter('model_path', value=models[(i + 1) % 2])])
            while not future.done():
                time.sleep(0.01)
            assert future.result().results[0].successful, future.result().results[0].reason
            time.sleep(3.0)
    finally:
        executor.shutdown(timeout_sec=2)
        node.destroy_node()
        rclpy.try_shutdown()
        interrupt_all(procs)
    t = np.asarray(arrivals)
    gaps = np.diff(t) / 1e6
    mids = t[1:]
    near = np.zeros(gaps.size, dtype=bool)
    per_swap, when = [], []
    for r in requests:
        window = (mids > r - 0.5e9) & (mids < r + 1.5e9)
        near |= window
        per_swap.append(float(gaps[window].max()) if window.any() else float('nan'))
        if window.any():
            i = int(np.argmax(np.where(window, gaps, -1.0)))
            when.append((int(t[i]) - r) / 1e6)      # where the gap began, ms after the request
    start = mids > t[0] + 2e9                      # the first commands after start-up left out
    quiet = gaps[start & ~near]
    p99 = float(np.percentile(quiet, 99))
    print(f'swap: {cpu_model()}, {os.cpu_count()} cores; demo model at 200 Hz; {swaps} swaps')
    print(f'  quiet intervals ms: p50 {np.median(quiet):.2f}  p99 {p99:.2f}  max {quiet.max():.2f}'
          f'  ({quiet.size} intervals)')
    print(f'  longest interval within 2 s of a swap, ms: median {np.median(per_swap):.2f}  '
          f'max {np.max(per_swap):.2f}  (ratio to quiet p99: {np.median(per_swap) / p99:.2f} / '
          f'{np.max(per_swap) / p99:.2f})')
    print(f'  per swap: {", ".join(f"{g:.1f}" for g in per_swap)}')
    print(f'  each began, ms after the request: {", ".join(f"{w:.0f}" for w in when)}')


def part_shadow(calls: int, rounds: int) -> None:
    import rclpy
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Imu

    from liquid_edge_ros_monitor.inference.node import LiquidInference
    tmp = Path(tempfile.mkdtemp(prefix='shadow_cost_'))
    models = model_pair(tmp)
    rclpy.init()
    nodes: Dict[str, Any] = {}
    for label, extra in (('no shadow', []), ('shadow', [Parameter('shadow_model_path',
                                                                  value=models[1])])):
        nodes[label] = LiquidInference(namespace=f'/bench_{label.replace(" ", "_")}',
                                       parameter_overrides=[
                                           Parameter('model_path', value=models[0]),
                                           Parameter('metrics_port', value=-1),
                                           Parameter('tracing.enabled', value=False),
                                           Parameter('control_period', value=1.0), *extra])
    nodes['shadow'].deployment.preparer.join(30)
    msg = Imu()
    msg.linear_acceleration.x, msg.angular_velocity.z = 0.1, 0.2
    times: Dict[str, List[int]] = {k: [] for k in nodes}
    seq = {k: 0 for k in nodes}                     # each node's input stamps 5 ms apart
    for label, node in nodes.items():               # warm-up, and the shadow installed
        for _ in range(200):
            seq[label] += 1
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(seq[label] * 5_000_000, 10**9)
            node._on_input(msg, {})
    assert 'candidate' in nodes['shadow'].deployment.shadows
    for _ in range(rounds):
        for label, node in nodes.items():
            record = times[label].append
            for _ in range(calls):
                seq[label] += 1
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(seq[label] * 5_000_000,
                                                                        10**9)
                t0 = time.perf_counter_ns()
                node._on_input(msg, {})
                record(time.perf_counter_ns() - t0)
    shadow = nodes['shadow'].deployment.shadows['candidate']
    print(f'shadow: {cpu_model()}, {os.cpu_count()} cores; demo model and a same-sized '
          f'candidate; {calls} calls x {rounds} rounds per case')
    base = float(np.median(times['no shadow'])) / 1000
    for label, ns in times.items():
        a = np.asarray(ns) / 1000
        p50 = float(np.median(a))
        print(f'  {label:<10} p50 {p50:7.1f} us  p99 {np.percentile(a, 99):7.1f} us  '
              f'+{p50 - base:6.1f} us ({p50 / base:.2f}x)')
    print(f'  shadow steps {shadow.steps}, skipped {shadow.skipped}, agreement '
          f'{shadow.agreement.value:.3f}')
    for node in nodes.values():
        node.destroy_node()
    rclpy.try_shutdown()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--part', choices=('swap', 'shadow', 'all'), default='all')
    ap.add_argument('--swaps', type=int, default=10)
    ap.add_argument('--calls', type=int, default=4000)
    ap.add_argument('--rounds', type=int, default=3)
    args = ap.parse_args()
    if args.part in ('shadow', 'all'):
        part_shadow(args.calls, args.rounds)
    if args.part in ('swap', 'all'):
        part_swap(args.swaps)
    return 0


if __name__ == '__main__':
    sys.exit(main())
