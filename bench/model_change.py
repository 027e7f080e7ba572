"""What changing the model of a running liquid_inference costs the control loop.

    .venv/bin/python bench/model_change.py [--part swap|shadow|all] [--swaps 10] [--models same|new]
        [--calls 4000]

`swap`: liquid_inference (the demo model), sim_robot (200 Hz IMU) and a probe that records when
each command arrives, each in its own process; this process, every 4.5 s, sets model_path through
the parameter service, as `ros2 param set` does: to the other of two models of the same shape
(`--models same`: the demo model and a copy with other weights), or to a model of a new size
each time (`--models new`: every swap compiles). Reported: the intervals between commands in the
quiet stretches between swaps, the longest interval of each quiet 2 s window against the longest
of the 2 s around each swap (from 0.5 s before the request), and when that one began.

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
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from common import cpu_model, interrupt_all

REPO = Path(__file__).resolve().parents[1]
#: Seconds from one swap request to the next: a 2 s window around each, a quiet 2 s between.
SPACING_S = 4.5
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


def new_architectures(tmp: Path, n: int) -> List[str]:
    """`n` models with the demo model's inputs and outputs and each its own size (25, 26, ...
    units): every swap to one of them compiles."""
    from liquid_edge_ros_monitor.lnn import load_model, save_model
    from liquid_edge_ros_monitor.lnn.model import Model
    from liquid_edge_ros_monitor.lnn.weights import expected_shapes
    demo = load_model(REPO / 'models' / 'imu_velocity.npz')
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        hyper = dict(demo.hyper, units=demo.units + 1 + i)
        t = {k: (rng.standard_normal(shape) * 0.1).astype(np.float32)
             for k, shape in expected_shapes(hyper).items()}
        path = tmp / f'units_{hyper["units"]}.npz'
        save_model(Model(hyper, t, demo.input_mean, demo.input_std, demo.input_names,
                         demo.output_names, demo.training), path)
        out.append(str(path))
    return out


def probe(ns: str, out: str) -> int:
    """Record the arrival time (CLOCK_MONOTONIC, the same in every process) of each command until
    SIGINT, then write them to `out` (.npy). A process of its own: the parameter requests of the
    bench process must not delay the receipt they are measured by."""
    import rclpy
    from geometry_msgs.msg import Twist
    from rclpy.node import Node
    rclpy.init()
    node = Node('bench_swap_probe', namespace=ns)
    arrivals: List[int] = []
    node.create_subscription(Twist, 'cmd_vel', lambda _m: arrivals.append(time.monotonic_ns()),
                             1000)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, Exception):  # noqa: BLE001 - the stop, however it comes
        pass
    np.save(out, np.asarray(arrivals, dtype=np.int64))
    return 0


def part_swap(swaps: int, models_kind: str) -> None:
    import rclpy
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient

    tmp = Path(tempfile.mkdtemp(prefix='model_change_'))
    if models_kind == 'same':
        pair = model_pair(tmp)
        models = [pair[(i + 1) % 2] for i in range(swaps)]
        first = pair[0]
    else:
        models = new_architectures(tmp, swaps)
        first = str(REPO / 'models' / 'imu_velocity.npz')
    ns = '/bench_swap'
    py = sys.executable
    arrivals_file = tmp / 'arrivals.npy'
    procs = [subprocess.Popen([py, '-m', 'liquid_edge_ros_monitor.inference.node', '--ros-args',
                               '-r', f'__ns:={ns}', '-p', 'tracing.enabled:=false',
                               '-p', 'metrics_port:=-1', '-p', 'rollback.window:=1.0',
                               '-p', f'model_path:={first}'],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO),
             subprocess.Popen([py, '-m', 'liquid_edge_ros_monitor.sim_robot', '--ros-args',
                               '-r', f'__ns:={ns}', '-p', 'camera.enabled:=false',
                               '-p', 'scan.enabled:=false', '-p', 'odom.enabled:=false',
                               '-p', 'chatter.enabled:=false'],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)]
    prober = subprocess.Popen([py, str(Path(__file__).resolve()), '--probe', str(arrivals_file),
                               '--ns', ns], cwd=REPO)
    rclpy.init()
    node = Node('bench_swap_requests', namespace=ns)
    client = AsyncParameterClient(node, f'{ns}/liquid_inference')
    requests: List[int] = []

    def call(future: Any, timeout_s: float) -> Any:
        deadline = time.monotonic() + timeout_s
        while not future.done() and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
        assert future.done(), 'no answer from the parameter service'
        return future.result()
    try:
        assert client.wait_for_services(60), 'no parameter services'
        time.sleep(5.0)                   # start-up settles; the probe has been recording
        for path in models:
            requests.append(time.monotonic_ns())
            result = call(client.set_parameters([Parameter('model_path', value=path)]), 30)
            assert result.results[0].successful, result.results[0].reason
            time.sleep(SPACING_S - (time.monotonic_ns() - requests[-1]) / 1e9)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        interrupt_all([prober])
        interrupt_all(procs)
    t = np.load(arrivals_file)
    gaps = np.diff(t) / 1e6
    mids = t[1:]
    per_swap, when = [], []
    for r in requests:
        window = (mids > r - 0.5e9) & (mids < r + 1.5e9)
        per_swap.append(float(gaps[window].max()) if window.any() else float('nan'))
        if window.any():
            i = int(np.argmax(np.where(window, gaps, -1.0)))
            when.append((int(t[i]) - r) / 1e6)      # where the gap began, ms after the request
    # Quiet windows of the same 2 s between swaps (from 1.5 s after one, ending 1 s before the
    # next): the longest interval a 2 s stretch has anyway.
    starts = [r + 1.5e9 for r in requests[:-1]]
    quiet_max = [float(gaps[(mids > s) & (mids < s + 2e9)].max()) for s in starts
                 if ((mids > s) & (mids < s + 2e9)).any()]
    quiet = np.concatenate([gaps[(mids > s) & (mids < s + 2e9)] for s in starts])
    p99 = float(np.percentile(quiet, 99))
    print(f'swap: {cpu_model()}, {os.cpu_count()} cores; demo model at 200 Hz; {swaps} swaps to '
          + ('a same-architecture model (retrained weights)' if models_kind == 'same' else
             'a new architecture each (every swap compiles)'))
    print(f'  quiet intervals ms: p50 {np.median(quiet):.2f}  p99 {p99:.2f}  max {quiet.max():.2f}'
          f'  ({quiet.size} intervals)')
    print(f'  longest interval in a quiet 2 s window, ms: median {np.median(quiet_max):.2f}  '
          f'max {np.max(quiet_max):.2f}')
    print(f'  longest interval within 2 s of a swap, ms: median {np.median(per_swap):.2f}  '
          f'max {np.max(per_swap):.2f}  (ratio to the quiet windows\' median: '
          f'{np.median(per_swap) / np.median(quiet_max):.2f} / '
          f'{np.max(per_swap) / np.median(quiet_max):.2f})')
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
    ap.add_argument('--models', choices=('same', 'new'), default='same',
                    help='swap between two same-shaped models (default), or to a new '
                         'architecture each time (every swap compiles)')
    ap.add_argument('--calls', type=int, default=4000)
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--probe', metavar='OUT', help=argparse.SUPPRESS)
    ap.add_argument('--ns', default='/bench_swap', help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe:
        return probe(args.ns, args.probe)
    if args.part in ('shadow', 'all'):
        part_shadow(args.calls, args.rounds)
    if args.part in ('swap', 'all'):
        part_swap(args.swaps, args.models)
    return 0


if __name__ == '__main__':
    sys.exit(main())
