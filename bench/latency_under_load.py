#!/usr/bin/env python3
"""Per-topic DDS delivery latency of the demo on an idle machine and with one core held busy.

Why: on a 2-core machine with one core spinning, the demo's reliable 10 Hz `/scan` was measured
0.3-0.9 s late for whole runs while the other topics stayed near 1 ms. This runs the demo
(`liquid-edge-monitor demo`) under each condition in turn, then reports the mean transport latency
(DDS source stamp to reception stamp, from `liquid_edge_topic_transport_latency_seconds`) over a
measured stretch between two scrapes, so what the monitor reported can be compared across
conditions and with sim_robot and the topic monitor alone (`--stack monitor`).

Each run sets ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a ROS_DOMAIN_ID of its own (71..80, or
`--domain`); the busy core is a child `while True: pass` that is killed at the end of the run.

    .venv/bin/python bench/latency_under_load.py                 # ~2 min: demo, idle and busy, x2
    .venv/bin/python bench/latency_under_load.py --stack monitor --runs 1
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from common import cpu_model, free_port, interrupt_all, scrape

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
TOPICS = ('/imu/data', '/odom', '/scan', '/camera/image_raw', '/chatter')
_FAMILY = 'liquid_edge_topic_transport_latency_seconds'


def latency_totals(text: str) -> Dict[str, Tuple[float, float]]:
    """topic -> (sum of seconds, count) of the transport-latency histogram in one scrape."""
    out: Dict[str, List[float]] = {}
    for m in re.finditer(rf'^{_FAMILY}_(sum|count)\{{([^}}]*)\}} (\S+)$', text, re.M):
        topic = re.search(r'topic="([^"]*)"', m.group(2))
        if topic:
            out.setdefault(topic.group(1), [0.0, 0.0])[m.group(1) == 'count'] = float(m.group(3))
    return {t: (v[0], v[1]) for t, v in out.items()}


def mean_ms(before: Dict[str, Tuple[float, float]], after: Dict[str, Tuple[float, float]],
            topic: str) -> Optional[float]:
    """Mean latency (ms) of the messages counted between two scrapes, or None if there were none."""
    if topic not in before or topic not in after:
        return None
    n = after[topic][1] - before[topic][1]
    return (after[topic][0] - before[topic][0]) / n * 1e3 if n > 0 else None


def start_stack(stack: str, port: int, env: Dict[str, str]) -> List[subprocess.Popen]:
    """The demo as a user starts it (live table included, to a null terminal), or its two parts."""
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=REPO)
    if stack == 'demo':
        return [subprocess.Popen([str(VENV_BIN / 'liquid-edge-monitor'), 'demo',
                                  '--metrics-port', str(port)], **quiet)]
    return [subprocess.Popen([sys.executable, '-m', 'liquid_edge_ros_monitor.sim_robot'], **quiet),
            subprocess.Popen([sys.executable, '-m', 'liquid_edge_ros_monitor.topics.node',
                              '--ros-args', '--params-file', str(REPO / 'config' / 'demo.yaml'),
                              '-p', f'metrics_port:={port}'], **quiet)]


def one_run(stack: str, busy: bool, settle: float, measure: float,
            env: Dict[str, str]) -> Dict[str, Optional[float]]:
    port = free_port()
    spinner = subprocess.Popen([sys.executable, '-c', 'while True: pass']) if busy else None
    procs = start_stack(stack, port, env)
    try:
        deadline = time.monotonic() + 60
        while True:                      # poll until the endpoint answers, then let it settle
            try:
                scrape(port, 2)
                break
            except OSError:
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise SystemExit(f'error: the {stack} stack did not serve metrics on {port}')
                time.sleep(0.5)
        time.sleep(settle)
        before = latency_totals(scrape(port))
        time.sleep(measure)
        after = latency_totals(scrape(port))
        return {t: mean_ms(before, after, t) for t in TOPICS}
    finally:
        interrupt_all(procs, 20)          # the demo stops its own children on Ctrl-C
        if spinner is not None:
            spinner.kill()
            spinner.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--stack', choices=('demo', 'monitor'), default='demo',
                    help='the whole demo, or sim_robot and the topic monitor alone')
    ap.add_argument('--runs', type=int, default=2, help='idle/busy pairs, alternated')
    ap.add_argument('--settle', type=float, default=10.0, help='seconds before measuring')
    ap.add_argument('--measure', type=float, default=20.0, help='seconds between the scrapes')
    ap.add_argument('--domain', type=int, default=0, help='ROS_DOMAIN_ID (default 71..80)')
    args = ap.parse_args()
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',    # network rule
               ROS_DOMAIN_ID=str(args.domain or 71 + os.getpid() % 10))
    print(f'CPU: {cpu_model()}, {os.cpu_count()} cores; stack: {args.stack}; '
          f'ROS_DOMAIN_ID={env["ROS_DOMAIN_ID"]}; mean transport latency, ms, over '
          f'{args.measure:g} s after {args.settle:g} s')
    print(f"{'run':<10}" + ''.join(f'{t:>18}' for t in TOPICS))
    for i in range(args.runs):
        for busy in (False, True):
            r = one_run(args.stack, busy, args.settle, args.measure, env)
            cells = ''.join(f'{"-" if r[t] is None else f"{r[t]:.2f}":>18}' for t in TOPICS)
            print(f"{('busy' if busy else 'idle') + f' {i + 1}':<10}{cells}", flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
