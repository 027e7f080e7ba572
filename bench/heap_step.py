#!/usr/bin/env python3
"""The soak's RSS step in 10 minutes: topic_monitor (its demo configuration, scraped every 10 s)
and sim_robot while a churn node makes `--names` short-lived topics for `--names` seconds, then
quiet while the monitor forgets them (`discovery.forget_after` 300 s). Prints one CSV line per
10 s: seconds, phase, monitor RSS MB, scrape bytes.

    .venv/bin/python bench/heap_step.py --out /tmp/step.csv

With glibc's dynamic mmap threshold (before core/heap.py) RSS rose by ~16 MB in the quiet phase,
while the scrape shrank; with the threshold fixed it stays flat (docs/BENCHMARKS.md, "Soak").
Network rule: LOCALHOST discovery, its own ROS_DOMAIN_ID.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from common import free_port, scrape

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--names', type=int, default=300, help='churn topics, one a second')
    ap.add_argument('--quiet', type=float, default=200.0, help='seconds after the churn')
    ap.add_argument('--domain', type=int, default=91)
    ap.add_argument('--out', default='/dev/stdout')
    args = ap.parse_args()
    py = sys.executable
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               ROS_DOMAIN_ID=str(args.domain), PYTHONUNBUFFERED='1')
    port = free_port()
    entry = [py, '-m', 'liquid_edge_ros_monitor.entry']
    sim = subprocess.Popen([*entry, 'sim_robot', '--ros-args', '-r', '__ns:=/soak',
                            '-p', 'camera.enabled:=false'], env=env, cwd=REPO,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    mon = subprocess.Popen([*entry, 'topic_monitor', '--ros-args', '-r', '__ns:=/soak',
                            '--params-file', str(REPO / 'config' / 'demo.yaml'),
                            '-p', f'metrics_port:={port}', '-p', 'discovery.forget_after:=300'],
                           env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    out = open(args.out, 'w')

    def log(phase: str) -> None:
        try:
            size = len(scrape(port, timeout=5).encode())
        except OSError:
            size = -1
        with open(f'/proc/{mon.pid}/status') as f:
            rss = int(f.read().split('VmRSS:')[1].split()[0]) // 1024
        out.write(f'{time.monotonic() - t0:.0f},{phase},{rss},{size}\n')
        out.flush()

    def wait(seconds: float, phase: str) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            log(phase)
            time.sleep(10)

    try:
        wait(30, 'start')
        churn = subprocess.Popen([py, str(REPO / 'bench' / 'soak.py'), '--role', 'churn',
                                  '--names', str(args.names), '--churn-s', str(args.names),
                                  '--lifetime', '6', '--fault-period', '20'], env=env, cwd=REPO,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while churn.poll() is None:
            log('churn')
            time.sleep(10)
        wait(args.quiet, 'quiet')
    finally:
        for p in (mon, sim):
            p.send_signal(signal.SIGINT)
            p.wait(20)
        out.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
