"""The instrumentation benchmarks run, measure what they say, and keep up with the example.

Figures are not asserted here (they belong in docs/BENCHMARKS.md): these runs are a few hundred
calls, enough to show that each case ran, that no trace was kept (the untraced path is what is
timed), and that the bench's callback is still the example's.
"""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import REPO



def needs_torch() -> None:
    pytest.importorskip('torch')        # installed by run_tests.sh (the example's), ncps with it
    pytest.importorskip('ncps')


def run_bench(script: str, *args: str) -> str:
    p = subprocess.run([sys.executable, str(REPO / 'bench' / script), '--calls', '60',
                        '--rounds', '2', *args], capture_output=True, text=True, timeout=300,
                       cwd=REPO)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def cases(report: str) -> dict:
    """case -> (p50, + p50) from the bench's table (the cases it printed)."""
    out = {}
    for line in report.splitlines():
        m = re.match(r'(\w[\w ]*?)\s+([\d.]+)\s+([\d.]+)\s+(-?[\d.]+)\s+([\d.]+)$', line)
        if m:
            out[m.group(1)] = (float(m.group(2)), float(m.group(4)))
    return out


@pytest.mark.parametrize('model', ['torch', 'numpy'])
def test_the_overhead_bench_times_every_case_untraced(model):
    """Every case timed; no trace kept (the untraced path is what is timed) and no error (each
    callback ran its model, not an early return)."""
    if model == 'torch':
        needs_torch()
    report = run_bench('instrument_overhead.py', '--model', model)
    assert set(cases(report)) == {'bare', 'untraced', 'tracing off', 'tensors'}, report
    for line in ('traces kept', 'errors'):
        counts = re.search(rf'^{line}: (\{{.*\}})', report, re.M)
        assert counts, report
        assert re.findall(r"'([\w ]+)': (\d+)", counts.group(1)) == [
            ('untraced', '0'), ('tracing off', '0'), ('tensors', '0')], report


def test_the_floor_bench_times_its_stand_ins_with_floats_and_with_tensors():
    needs_torch()
    for extra in ((), ('--tensors',)):
        report = run_bench('instrument_floor.py', *extra)
        assert set(cases(report)) == {'bare', 'empty', 'marks', 'lean'}, report


def test_the_bench_callback_is_the_examples():
    """The bench says it times examples/ncps_torch_node.py's on_imu: the lines that compute
    (features, tensor, forward, command) are the same in both."""
    example = (REPO / 'examples' / 'ncps_torch_node.py').read_text()
    bench = (REPO / 'bench' / 'instrument_overhead.py').read_text()
    assert 'features = [msg.angular_velocity.z, msg.linear_acceleration.x,' in example
    assert 'features = [msg.angular_velocity.z, msg.linear_acceleration.x,' in bench
    assert 'torch.tensor([[features]], dtype=torch.float32)' in example
    assert 'torch.tensor([[features]], dtype=torch.float32)' in bench
    assert 'self.monitor.inputs(features)' in example and 'mon.inputs(features)' in bench
    assert 'y[0, -1].tolist()' in example and "y[0, -1] if kind == 'torch'" in bench
    assert 'self.monitor.outputs(command)' in example and 'mon.outputs(command)' in bench
