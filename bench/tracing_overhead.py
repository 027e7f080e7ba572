"""What tracing costs the inference callback: one parent span with three children (the node's
`liquid_inference.callback` with preprocess / forward / publish), per callback, in microseconds.

    .venv/bin/python bench/tracing_overhead.py [--calls 20000]

Cases, run side by side in one process: tracing disabled (NoOpTracer, the baseline), enabled with
sampling ratio 0, enabled and exporting to a live OTLP receiver in another process (grpc and
http/protobuf), and enabled with the collector dead (closed port: export fails, the queue fills and
spans are dropped). Median of 5 rounds each.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

from common import free_port as closed_port

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / 'test'))

from liquid_edge_ros_monitor.instrument.otel_env import TracingConfig  # noqa: E402
from liquid_edge_ros_monitor.instrument.tracing import Tracing, setup_tracing  # noqa: E402

RECEIVER = '''
import sys, time
sys.path.insert(0, {test!r})
from otlp_receiver import OtlpReceiver
with OtlpReceiver({protocol!r}) as rx:
    print(rx.endpoint, flush=True)
    sys.stdin.read()
'''


def callback(tracing: Tracing, seq: int) -> None:
    with tracing.tracer.start_as_current_span('liquid_inference.callback') as parent:
        parent.set_attribute('ros.seq', seq)
        for step in ('preprocess', 'forward', 'publish'):
            with tracing.tracer.start_as_current_span(step):
                pass


def measure(tracing: Tracing, calls: int) -> float:
    rounds: List[float] = []
    for _ in range(5):
        t0 = time.perf_counter()
        for i in range(calls):
            callback(tracing, i)
        rounds.append((time.perf_counter() - t0) / calls * 1e6)
    return statistics.median(rounds)




def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--calls', type=int, default=20000)
    args = parser.parse_args()
    results: Dict[str, Any] = {}

    def run(label: str, overrides: Dict[str, Any]) -> None:
        tracing = setup_tracing(TracingConfig.from_env(overrides, environ={}), {})
        callback(tracing, -1)
        results[label] = (measure(tracing, args.calls), tracing)
        t0 = time.monotonic()
        tracing.shutdown(2.0)
        print(f'{label:28s} {results[label][0]:8.1f} us/callback   exported {tracing.exported_spans:7d}  '
              f'failed {tracing.failed_spans:7d}  dropped {tracing.dropped_spans:7d}  '
              f'shutdown {time.monotonic() - t0:.2f} s', flush=True)

    run('disabled (baseline)', {'enabled': False})
    run('enabled, ratio 0', {'sampling_ratio': 0.0, 'endpoint': f'http://127.0.0.1:{closed_port()}'})
    for protocol in ('grpc', 'http/protobuf'):
        proc = subprocess.Popen([sys.executable, '-c', RECEIVER.format(test=str(REPO / 'test'), protocol=protocol)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            endpoint = proc.stdout.readline().strip()
            run(f'live receiver, {protocol}', {'endpoint': endpoint, 'protocol': protocol})
        finally:
            proc.stdin.close()
            proc.wait(10)
    run('dead collector, grpc', {'endpoint': f'http://127.0.0.1:{closed_port()}', 'export_timeout_s': 2.0})
    base = results['disabled (baseline)'][0]
    print('ratio to baseline: ' + ', '.join(f'{k} {v[0] / base:.1f}x' for k, v in results.items()))


if __name__ == '__main__':
    main()
