"""What the instrumentation adds to a team's callback: the same callback bare and wrapped by
`InferenceMonitor` (stages, inputs, outputs), called back to back in one process.

    .venv/bin/python bench/instrument_overhead.py [--calls 20000] [--rounds 5] [--model numpy|torch]

The callback is examples/ncps_torch_node.py's `on_imu` (features from an Imu message, the model,
its output read into a Twist; publishing is left out, it is the same DDS call either way).
`--model numpy` swaps the CfC for a 3x16x2 numpy network, so the callback is small and the
overhead shows; `--model torch` runs the ncps CfC itself (about 220 us a call on a 2-core VM).

Cases: `bare` (no monitor), `untraced` (tracing on, nothing kept: head ratio 0, no start-up
traces, no slow or late callback, normal inputs: the cost every callback pays for its ids and
marks), `tracing off` (`liquid_edge.tracing.enabled: false`), all reporting what the example
reports (the features and the command, Python floats), and `tensors`: `untraced`, given the
model's input and output tensors instead (what a callback that holds no floats pays). The cases
take turns call by call (the order rotated each round), so machine load hits them alike.
Reported: median and p99 per call, the medians' difference from bare (the overhead, target
<= 10 us) and their ratio.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence

import numpy as np

from common import cpu_model

REPO = Path(__file__).resolve().parents[1]
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'      # network rule
os.environ.setdefault('ROS_DOMAIN_ID', str(150 + os.getpid() % 50))
os.environ.setdefault('OTEL_EXPORTER_OTLP_ENDPOINT', 'http://127.0.0.1:9')   # nothing is kept


#: Callbacks between two runs of the monitor's update timer: its period (0.5 s, the default)
#: at the example's 200 Hz. The timer empties the input ring; a bench that never ran it would
#: measure a ring that wraps, a case no node has.
UPDATE_EVERY = 100


def make_model(kind: str) -> Callable[[Any], Any]:
    if kind == 'torch':
        import torch
        from ncps.torch import CfC
        from ncps.wirings import AutoNCP
        torch.manual_seed(0)
        rnn = CfC(3, AutoNCP(16, 2), batch_first=True)
        rnn.eval()
        state = [None]

        def torch_step(x: Any) -> Any:
            with torch.no_grad():
                y, state[0] = rnn(x, state[0])
            return y
        return torch_step
    rng = np.random.default_rng(0)
    w1, w2 = rng.standard_normal((16, 3)), rng.standard_normal((2, 16))

    def numpy_step(x: Any) -> Any:
        return w2 @ np.tanh(w1 @ x)
    return numpy_step


def to_model(kind: str, features: List[float]) -> Any:
    """The model's input from the features (the example's preprocessing)."""
    if kind == 'torch':
        import torch
        return torch.tensor([[features]], dtype=torch.float32)
    return np.array(features)


def command_of(kind: str, y: Any) -> List[float]:
    """The command's two values out of the model's output, as the example reads them (one
    `tolist()`: a bare callback reads its output once too)."""
    return (y[0, -1] if kind == 'torch' else y).tolist()


def callbacks(kind: str, monitors: Dict[str, Any],
              tensors: Sequence[str] = ()) -> Dict[str, Callable[[Any], None]]:
    """The example's on_imu, bare and instrumented (one per monitor), each with its own model.
    The monitors report what the example reports, the features and the command as Python
    floats; those labelled in `tensors` are given the model's input and output tensors (or
    arrays) instead, as a callback that holds nothing else would."""
    from geometry_msgs.msg import Twist

    def bare_for(model: Callable[[Any], Any]) -> Callable[[Any], None]:
        def on_imu(msg: Any) -> None:
            features = [msg.angular_velocity.z, msg.linear_acceleration.x,
                        msg.linear_acceleration.y]
            x = to_model(kind, features)
            y = model(x)
            command = command_of(kind, y)
            cmd = Twist()
            cmd.linear.x, cmd.angular.z = command
        return on_imu

    def instrumented_for(mon: Any, model: Callable[[Any], Any]) -> Callable[[Any], None]:
        def on_imu(msg: Any) -> None:
            with mon.stage('preprocess'):
                features = [msg.angular_velocity.z, msg.linear_acceleration.x,
                            msg.linear_acceleration.y]
                x = to_model(kind, features)
            if not mon.inputs(features):
                return
            with mon.stage('forward'):
                y = model(x)
            command = command_of(kind, y)
            mon.outputs(command)
            cmd = Twist()
            cmd.linear.x, cmd.angular.z = command
        return mon.callback(on_imu)

    def tensors_for(mon: Any, model: Callable[[Any], Any]) -> Callable[[Any], None]:
        def on_imu(msg: Any) -> None:
            with mon.stage('preprocess'):
                features = [msg.angular_velocity.z, msg.linear_acceleration.x,
                            msg.linear_acceleration.y]
                x = to_model(kind, features)
            if not mon.inputs(x):
                return
            with mon.stage('forward'):
                y = model(x)
            mon.outputs(y)
            command = command_of(kind, y)
            cmd = Twist()
            cmd.linear.x, cmd.angular.z = command
        return mon.callback(on_imu)

    out = {'bare': bare_for(make_model(kind))}
    for label, mon in monitors.items():
        make = tensors_for if label in tensors else instrumented_for
        out[label] = make(mon, make_model(kind))
    return out


def imu() -> Any:
    """The message every case gets (the example's three features)."""
    from sensor_msgs.msg import Imu
    msg = Imu()
    msg.angular_velocity.z, msg.linear_acceleration.x, msg.linear_acceleration.y = 0.2, 0.1, 0.05
    return msg


def time_cases(cases: Dict[str, Callable[[Any], None]], monitors: List[Any], calls: int,
               rounds: int) -> Dict[str, List[int]]:
    """Nanoseconds of each call of each case. One call of each case in turn, the order rotated
    each round: a drift of the machine (frequency, caches, the other core's load) hits every case
    alike. Blocks of calls per case, as first written, put 5 us of order bias into a 200 us torch
    callback. The monitors' `update()` runs every `UPDATE_EVERY` calls, outside the timed calls."""
    msg = imu()
    times: Dict[str, List[int]] = {k: [] for k in cases}
    clock = time.perf_counter_ns
    for fn in cases.values():                       # warm-up: imports, first allocations
        for _ in range(200):
            fn(msg)
    order = list(cases.items())
    for r in range(rounds):
        rotated = order[r % len(order):] + order[:r % len(order)]
        for i in range(calls):
            if i % UPDATE_EVERY == 0:               # the update timer, between callbacks
                for mon in monitors:
                    mon.update()
            for label, fn in rotated:
                t0 = clock()
                fn(msg)
                times[label].append(clock() - t0)
    return times


def report(times: Dict[str, List[int]]) -> None:
    """Median and p99 per case, the medians' difference from `bare` and their ratio."""
    bare = float(np.median(times['bare'])) / 1000
    print(f'{"case":<13} {"p50 us":>8} {"p99 us":>8} {"+p50 us":>8} {"ratio":>6}')
    for label, ns in times.items():
        a = np.asarray(ns) / 1000
        p50, p99 = float(np.median(a)), float(np.percentile(a, 99))
        print(f'{label:<13} {p50:8.2f} {p99:8.2f} {p50 - bare:8.2f} {p50 / bare:6.2f}')


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--calls', type=int, default=20000, help='calls per case per round')
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--model', choices=('numpy', 'torch'), default='numpy')
    args = ap.parse_args()
    import rclpy
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    sys.path.insert(0, str(REPO))
    from liquid_edge_ros_monitor.instrument import InferenceMonitor, ModelInfo
    rclpy.init()
    nodes, monitors = [], {}
    quiet = {'liquid_edge.metrics_port': -1, 'liquid_edge.tracing.sampling_ratio': 0.0,
             'liquid_edge.tracing.startup_traces': 0, 'liquid_edge.tracing.slow_threshold': 10.0,
             'liquid_edge.control_period': 10.0, 'liquid_edge.update_period': 0.5}
    for label, extra in (('untraced', {}), ('tracing off', {'liquid_edge.tracing.enabled': False}),
                         ('tensors', {})):
        node = Node(f'bench_{label.replace(" ", "_")}', parameter_overrides=[
            Parameter(k, value=v) for k, v in {**quiet, **extra}.items()])
        nodes.append(node)
        monitors[label] = InferenceMonitor(node, ModelInfo('bench', framework=args.model),
                                           input_topic='imu')
    cases = callbacks(args.model, monitors, tensors=('tensors',))
    times = time_cases(cases, list(monitors.values()), args.calls, args.rounds)
    print(f'{cpu_model()}, {os.cpu_count()} cores; model {args.model}; '
          f'{args.calls} calls x {args.rounds} rounds per case')
    report(times)
    kept = {label: sum(mon.sampler.kept.values()) if mon.sampler else 0
            for label, mon in monitors.items()}
    print(f'traces kept: {kept} (must be 0: the untraced path was measured)')
    errors = {label: sum(mon.metrics.errors.values()) for label, mon in monitors.items()}
    print(f'errors: {errors} (must be 0: every callback ran its model)')
    for mon in monitors.values():
        mon.close(0.5)
    for node in nodes:
        node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
