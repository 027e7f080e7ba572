#!/usr/bin/env python3
"""Plot one process's RSS over soak runs (bench/soak.py's samples.csv, plain or .gz), one line per
run, so a step or a ramp is seen at a glance next to the tables in docs/BENCHMARKS.md.

    pip install matplotlib      # not a project dependency: only this plot needs it
    python bench/plot_soak.py --out docs/soak/topic_monitor-rss.png \\
        'aedb41f=docs/soak/samples-3600s.csv.gz' 'ae1c904=docs/soak/samples-3600s-ae1c904.csv.gz'
"""
from __future__ import annotations

import argparse
import csv
import gzip
import io
import sys
from pathlib import Path


def read_rss(path: Path, process: str) -> tuple[list[float], list[float], list[tuple[str, float]]]:
    """Seconds and RSS MB of `process`, and the first time each phase was seen."""
    raw = path.read_bytes()
    text = gzip.decompress(raw).decode() if raw[:2] == b'\x1f\x8b' else raw.decode()
    ts: list[float] = []
    mb: list[float] = []
    phases: list[tuple[str, float]] = []
    for row in csv.DictReader(io.StringIO(text)):
        if row['process'] != process:
            continue
        t = float(row['t'])
        if not phases or phases[-1][0] != row['phase']:
            phases.append((row['phase'], t))
        ts.append(t)
        mb.append(float(row['rss_mb']))
    return ts, mb, phases


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('runs', nargs='+', metavar='LABEL=SAMPLES_CSV')
    ap.add_argument('--process', default='topic_monitor')
    ap.add_argument('--out', required=True, help='PNG to write')
    args = ap.parse_args()
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        print('plot_soak: error: matplotlib is not installed (pip install matplotlib)',
              file=sys.stderr)
        return 2
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=100)
    quiet_at = None
    for spec in args.runs:
        label, sep, name = spec.partition('=')
        path = Path(name)
        if not sep or not path.is_file():
            print(f'plot_soak: error: {spec}: expected LABEL=SAMPLES_CSV naming a file',
                  file=sys.stderr)
            return 2
        ts, mb, phases = read_rss(path, args.process)
        if not ts:
            print(f'plot_soak: error: {path}: no samples of process {args.process!r}',
                  file=sys.stderr)
            return 2
        ax.plot([t / 60 for t in ts], mb, label=label)
        quiet_at = next((t for p, t in phases if p == 'quiet'), quiet_at)
    ax.axvline(10, color='grey', linestyle=':', linewidth=1)
    ax.text(10.3, ax.get_ylim()[0], ' growth measured from here', fontsize=8, va='bottom')
    if quiet_at is not None:
        ax.axvline(quiet_at / 60, color='grey', linestyle='--', linewidth=1)
        ax.text(quiet_at / 60 + 0.3, ax.get_ylim()[0], ' churn stops', fontsize=8, va='bottom')
    ax.set_xlabel('minutes')
    ax.set_ylabel(f'{args.process} RSS (MB)')
    ax.set_title(f'bench/soak.py --duration 3600: {args.process} RSS per run (commit)')
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out)
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
