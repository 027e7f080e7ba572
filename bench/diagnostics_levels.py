"""What a person sees of the demo in rqt: every `/diagnostics` entry, its level, its message's
length, and how often its level changed, over minutes of the demo with one core held busy.

    .venv/bin/python bench/diagnostics_levels.py [--duration 300] [--warmup 20] [--busy 1]
                                                [--tree DIR]

Runs `liquid-edge-monitor demo --no-live` (sim_robot, topic_monitor, node_monitor,
liquid_inference) for `--duration` seconds with `--busy` processes spinning beside it (a loaded
robot computer: on 2 cores, one of them), and listens to `/diagnostics` from this process.
Level changes are counted after `--warmup` seconds (start-up STALE -> OK is not flapping).
`--tree DIR`: run the package of another checkout (a `git worktree` of an older commit), for a
before/after on one machine. Printed: one row per entry (name, levels seen, last level, level
changes, longest message in characters, last message), then totals.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Tuple

from common import cpu_model, interrupt_all

REPO = Path(__file__).resolve().parents[1]
LEVELS = {0: 'OK', 1: 'WARN', 2: 'ERROR', 3: 'STALE'}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--duration', type=float, default=300.0, help='seconds of the demo')
    ap.add_argument('--warmup', type=float, default=20.0, help='seconds before counting changes')
    ap.add_argument('--busy', type=int, default=1, help='processes spinning beside the demo')
    ap.add_argument('--tree', type=Path, default=REPO, help='checkout whose package runs')
    args = ap.parse_args()
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',        # network rule
               ROS_DOMAIN_ID=os.environ.get('ROS_DOMAIN_ID', str(120 + os.getpid() % 30)),
               RMW_IMPLEMENTATION='rmw_fastrtps_cpp', PYTHONUNBUFFERED='1')
    # The tree's package before the installed one (an editable install's finder comes after the
    # path), in the demo's own processes too.
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(args.tree), env.get('PYTHONPATH')]))
    os.environ.update(env)
    sys.path.insert(0, str(args.tree))
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray

    procs: List[subprocess.Popen] = []
    spin = 'import signal, sys\nsignal.signal(signal.SIGINT, lambda *a: sys.exit(0))\nwhile 1: pass'
    for _ in range(args.busy):
        procs.append(subprocess.Popen([sys.executable, '-c', spin]))
    demo = subprocess.Popen(
        [sys.executable, '-c', 'import sys; from liquid_edge_ros_monitor.cli import main; '
         'sys.exit(main())', 'demo', '--no-live', '--metrics-port', '0',
         '--duration', str(args.duration + 15)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(demo)
    # name -> [(t, level, message)]
    seen: Dict[str, List[Tuple[float, int, str]]] = defaultdict(list)
    t_start = time.monotonic()

    def on_diag(msg: DiagnosticArray) -> None:
        t = time.monotonic() - t_start
        for s in msg.status:
            level = s.level if isinstance(s.level, int) else int.from_bytes(s.level, 'little')
            seen[s.name].append((t, level, s.message))

    rclpy.init()
    # Named as `ros2 topic echo /diagnostics` names its node: the probe is a user's tool.
    node = rclpy.create_node(f'_ros2cli_{os.getpid()}')
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diag, 100)
    try:
        while time.monotonic() - t_start < args.duration and demo.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.2)
    finally:
        interrupt_all(procs)
        node.destroy_node()
        rclpy.try_shutdown()
    ran = time.monotonic() - t_start
    print(f'{cpu_model()}, {os.cpu_count()} cores; tree {args.tree}; demo {ran:.0f} s, '
          f'{args.busy} busy process(es); level changes counted after {args.warmup:.0f} s')
    print(f'{"entry":<58} {"levels seen":<16} {"last":<6} {"changes":>7} {"max len":>7}  last message')
    total_changes = 0
    for name in sorted(seen):
        rows = [r for r in seen[name]]
        counted = [r for r in rows if r[0] >= args.warmup]
        changes = sum(1 for a, b in zip(counted, counted[1:]) if a[1] != b[1])
        total_changes += changes
        levels = '/'.join(LEVELS.get(v, str(v)) for v in sorted({r[1] for r in rows}))
        longest = max(len(r[2]) for r in rows)
        last = rows[-1]
        print(f'{name[:58]:<58} {levels:<16} {LEVELS.get(last[1], last[1]):<6} {changes:7d} '
              f'{longest:7d}  {last[2][:70]}')
    print('messages at WARN, ERROR or STALE (the first three of each entry):')
    for name in sorted(seen):
        bad: List[str] = []
        for _, level, message in seen[name]:
            text = f'{LEVELS.get(level, level)} "{message}"'
            if level != 0 and text not in bad:
                bad.append(text)
        if bad:
            print(f'  {name}: ' + '; '.join(bad[:3]))
    over_60 = sum(1 for name in seen if max(len(r[2]) for r in seen[name]) > 60)
    print(f'{len(seen)} entries, {total_changes} level changes after the warm-up, '
          f'{over_60} entries with a message over 60 characters')
    return 0 if seen else 1


if __name__ == '__main__':
    sys.exit(main())
