"""The soak in two minutes (issue 12 §4): bench/soak.py with a short churn phase.

The demo stack under topic churn, sim_robot faults, a SIGKILLed and restarted publisher, a topic
that changes type, garbage messages and an OTLP receiver that goes away and comes back. Asserted:
no process exits, FDs and threads flat, and every endpoint's series back within 10 % of the
baseline once churn stops (forgotten topics and nodes leave the scrape). No timing asserts: the
one-hour figures (RSS growth per hour) are in docs/BENCHMARKS.md.
"""
from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO


def test_two_minute_soak(tmp_path):
    out = tmp_path / 'soak'
    p = subprocess.run([sys.executable, str(REPO / 'bench' / 'soak.py'), '--duration', '120',
                        '--names', '60', '--forget-after', '5', '--sample-period', '5',
                        '--kill-period', '40', '--otlp-period', '30', '--fault-period', '10',
                        '--out', str(out)],
                       capture_output=True, text=True, timeout=400, cwd=REPO)
    assert p.returncode == 0, p.stdout + p.stderr
    s = json.loads((out / 'summary.json').read_text())
    report = p.stdout
    assert s['unexpected_exits'] == [], report
    assert s['sim_robot_kills'] >= 1, report
    assert set(s['processes']) == {'topic_monitor', 'node_monitor', 'liquid_inference'}, report
    for name, proc in s['processes'].items():
        fds_start, _lo, _hi, fds_end = proc['fds']
        threads_start, _lo, _hi, threads_end = proc['threads']
        assert abs(fds_end - fds_start) <= 2, f'{name} FDs {proc["fds"]}\n{report}'
        assert abs(threads_end - threads_start) <= 2, f'{name} threads {proc["threads"]}\n{report}'
    # Churn really happened (series grew), and what came went again.
    assert s['series']['topic_monitor']['peak'] > 1.5 * s['series']['topic_monitor']['baseline']
    for name, se in s['series'].items():
        assert abs(se['end'] - se['baseline']) <= 0.1 * se['baseline'], f'{name}: {se}\n{report}'
    for log in out.glob('*.log'):
        assert 'Traceback' not in log.read_text(errors='replace'), log.name
