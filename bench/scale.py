#!/usr/bin/env python3
"""Scale: topic_monitor with no configuration on N topics at 10 Hz plus one 1 kHz Imu.

Two runs, side by side in one invocation (same machine, same load around them):

- `single`: the monitor and one sensor_msgs/Imu topic at `--imu-rate` (sim_robot, every other
  stream off): the single-topic CPU figure, per 1,000 messages/s;
- `scale`: the same plus `--topics` sensor_msgs/Temperature topics at `--rate` Hz, published from
  `--publishers` processes (pre-serialized messages, header stamps patched in place).

For each: every topic counted (scrape: `liquid_edge_topic_messages_total` > 0 and the rate within
10 % of the published one), the monitor's CPU % over `--measure` s (psutil, user+sys), RSS, the
scrape's size and time (`--scrapes` scrapes, median and max), and the size of the monitor's
/diagnostics arrays (statuses per array, serialized bytes). Every process runs with
ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a ROS_DOMAIN_ID of its own (61..70, or `--domain`).

    .venv/bin/python bench/scale.py                           # 1,000 topics (~3 min on 2 cores)
    .venv/bin/python bench/scale.py --topics 200 --measure 20
    .venv/bin/python bench/scale.py --no-histograms   # discovery.histograms: false (15 series/topic)

Targets (issue 12): CPU per 1k msgs/s within 1.5x of the single-topic figure, RSS <= 250 MB,
scrape <= 250 ms at 1,000 topics.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from common import cpu_model as _cpu_model, free_port, interrupt_all, scrape

REPO = Path(__file__).resolve().parents[1]
NS = '/scale'


def role_pub(args: argparse.Namespace) -> int:
    """Publish topics [first, first+count) at `rate` Hz until SIGINT (absolute deadlines)."""
    import rclpy
    from rclpy.qos import QoSProfile
    from rclpy.serialization import serialize_message
    from rclpy.signals import SignalHandlerOptions
    from sensor_msgs.msg import Temperature

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    rclpy.init(args=['--ros-args', '-r', f'__ns:={NS}'],
               signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node(f'scale_pub_{args.first}')
    qos = QoSProfile(depth=10)
    pubs = [node.create_publisher(Temperature, f'scale/t{i:04d}', qos)
            for i in range(args.first, args.first + args.count)]
    buf = bytearray(serialize_message(Temperature(temperature=20.0)))
    period = 1.0 / args.rate
    next_t = time.monotonic()
    while not stop.is_set():
        now_ns = time.time_ns()
        struct.pack_into('<iI', buf, 4, now_ns // 10 ** 9, now_ns % 10 ** 9)
        data = bytes(buf)
        for p in pubs:
            p.publish(data)
        next_t += period
        delay = next_t - time.monotonic()
        if delay > 0:
            stop.wait(delay)
        else:
            next_t = time.monotonic()
    node.destroy_node()
    rclpy.try_shutdown()
    return 0




def topic_samples(text: str, metric: str) -> Dict[str, float]:
    out = {}
    prefix = metric + '{'
    for line in text.splitlines():
        if line.startswith(prefix) and 'topic="' in line:
            topic = line.split('topic="', 1)[1].split('"', 1)[0]
            out[topic] = float(line.rsplit(' ', 1)[1])
    return out


class DiagSizes:
    """Sizes of the topic monitor's /diagnostics arrays (statuses per array, serialized bytes)."""

    def __init__(self) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.serialization import serialize_message
        self._ser = serialize_message
        self.sizes: List[tuple] = []
        self.node = rclpy.create_node('scale_diag_listener')
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on, 10)
        self.ex = SingleThreadedExecutor()
        self.ex.add_node(self.node)
        self.thread = threading.Thread(target=self.ex.spin, daemon=True)
        self.thread.start()

    def _on(self, msg: Any) -> None:
        n = sum(1 for s in msg.status if s.name.startswith('topic_monitor:'))
        if n:
            self.sizes.append((n, len(self._ser(msg))))

    def close(self) -> None:
        self.ex.shutdown(2)
        self.node.destroy_node()


def run_case(name: str, topics: int, args: argparse.Namespace, env: Dict[str, str],
             out: Path) -> Dict[str, Any]:
    import psutil
    py = sys.executable
    port = free_port()
    procs: List[subprocess.Popen] = []

    def start(argv: List[str], log: str) -> subprocess.Popen:
        p = subprocess.Popen(argv, env=env, cwd=REPO, stdin=subprocess.DEVNULL,
                             stdout=open(out / log, 'wb'), stderr=subprocess.STDOUT)
        procs.append(p)
        return p

    entry = [py, '-m', 'liquid_edge_ros_monitor.entry']
    off = [a for s in ('odom', 'scan', 'camera', 'chatter') for a in ('-p', f'{s}.enabled:=false')]
    try:
        monitor = start([*entry, 'topic_monitor', '--ros-args', '-r', f'__ns:={NS}',
                         '-p', f'metrics_port:={port}',
                         # room for every topic of the run (the default bound is 1,000)
                         '-p', f'discovery.max_topics:={max(1000, topics + 100)}',
                         '-p', f'discovery.histograms:={str(not args.no_histograms).lower()}'],
                        f'{name}-monitor.log')
        start([*entry, 'sim_robot', '--ros-args', '-r', f'__ns:={NS}',
               '-p', f'imu.rate:={args.imu_rate}', *off], f'{name}-sim_robot.log')
        per = -(-topics // args.publishers) if topics else 0
        for i in range(0, topics, per or 1):
            start([py, str(Path(__file__).resolve()), '--role', 'pub', '--first', str(i),
                   '--count', str(min(per, topics - i)), '--rate', str(args.rate)],
                  f'{name}-pub{i}.log')
        expected = topics + 1
        deadline = time.monotonic() + 180
        while True:
            try:
                text = scrape(port)
                rates = topic_samples(text, 'liquid_edge_topic_rate_hz')
            except OSError:
                rates = {}
            counted = {t: r for t, r in rates.items() if t.startswith(NS + '/')}
            ok = sum(1 for t, r in counted.items()
                     if abs(r - (args.imu_rate if t.endswith('imu/data') else args.rate))
                     <= 0.1 * (args.imu_rate if t.endswith('imu/data') else args.rate))
            if ok >= expected:
                break
            if time.monotonic() > deadline:
                break
            time.sleep(1.0)
        time.sleep(args.settle)
        ps = psutil.Process(monitor.pid)
        c0, t0 = ps.cpu_times(), time.monotonic()
        time.sleep(args.measure)
        c1, t1 = ps.cpu_times(), time.monotonic()
        cpu = 100.0 * ((c1.user + c1.system) - (c0.user + c0.system)) / (t1 - t0)
        rss = ps.memory_info().rss / 2 ** 20
        times, size = [], 0
        for _ in range(args.scrapes):
            s0 = time.perf_counter()
            text = scrape(port)
            times.append(time.perf_counter() - s0)
            size = len(text.encode())
        msgs = topic_samples(text, 'liquid_edge_topic_messages_total')
        rates = topic_samples(text, 'liquid_edge_topic_rate_hz')
        counted = [t for t, m in msgs.items() if t.startswith(NS + '/') and m > 0]
        in_rate = [t for t in counted if t in rates and abs(
            rates[t] - (args.imu_rate if t.endswith('imu/data') else args.rate))
            <= 0.1 * (args.imu_rate if t.endswith('imu/data') else args.rate)]
        return {'case': name, 'topics': expected, 'msgs_per_s': topics * args.rate + args.imu_rate,
                'counted': len(counted), 'rate_within_10pct': len(in_rate),
                'cpu_pct': round(cpu, 1), 'rss_mb': round(rss, 1),
                'scrape_kb': round(size / 1000, 1),
                'scrape_ms_median': round(1000 * statistics.median(times), 1),
                'scrape_ms_max': round(1000 * max(times), 1)}
    finally:
        interrupt_all(procs)


def bench(args: argparse.Namespace) -> int:
    out = Path(args.out or tempfile.mkdtemp(prefix='scale-'))
    out.mkdir(parents=True, exist_ok=True)
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'        # network rule
    os.environ['ROS_DOMAIN_ID'] = str(args.domain or 61 + os.getpid() % 10)
    os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    env = os.environ.copy()
    import rclpy
    rclpy.init()
    diag = DiagSizes()
    try:
        results = []
        for name, topics in (('single', 0), ('scale', args.topics)):
            diag.sizes.clear()
            r = run_case(name, topics, args, env, out)
            sizes = [s for s in diag.sizes if s[0] >= r['counted'] * 0.9] or diag.sizes
            r['diag_statuses_per_array'] = max((s[0] for s in sizes), default=0)
            r['diag_array_kb'] = round(max((s[1] for s in sizes), default=0) / 1000, 1)
            r['cpu_pct_per_1k_msgs'] = round(r['cpu_pct'] / (r['msgs_per_s'] / 1000.0), 2)
            results.append(r)
            print(json.dumps(r), flush=True)
    finally:
        diag.close()
        rclpy.try_shutdown()
    single, scale = results
    ratio = scale['cpu_pct_per_1k_msgs'] / single['cpu_pct_per_1k_msgs']
    summary = {'results': results, 'cpu_per_1k_ratio': round(ratio, 2),
               'cpu_model': _cpu_model(), 'cores': os.cpu_count()}
    (out / 'summary.json').write_text(json.dumps(summary, indent=1) + '\n')
    print('| case | topics | msgs/s | counted | rate ±10 % | CPU % | CPU %/1k msgs/s | RSS MB | '
          'scrape kB | scrape ms median / max | /diagnostics statuses / kB |')
    print('|---|---|---|---|---|---|---|---|---|---|---|')
    for r in results:
        print(f"| {r['case']} | {r['topics']} | {r['msgs_per_s']} | {r['counted']} | "
              f"{r['rate_within_10pct']} | {r['cpu_pct']} | {r['cpu_pct_per_1k_msgs']} | "
              f"{r['rss_mb']} | {r['scrape_kb']} | {r['scrape_ms_median']} / "
              f"{r['scrape_ms_max']} | {r['diag_statuses_per_array']} / {r['diag_array_kb']} |")
    print(f"CPU per 1k msgs/s, scale / single: {ratio:.2f}x; {summary['cpu_model']}, "
          f"{summary['cores']} cores; logs in {out}")
    return 0




def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--role', choices=('bench', 'pub'), default='bench')
    ap.add_argument('--topics', type=int, default=1000)
    ap.add_argument('--rate', type=float, default=10.0)
    ap.add_argument('--publishers', type=int, default=4)
    ap.add_argument('--imu-rate', type=float, default=1000.0)
    ap.add_argument('--measure', type=float, default=30.0, help='CPU measured over, seconds')
    ap.add_argument('--settle', type=float, default=5.0)
    ap.add_argument('--scrapes', type=int, default=5)
    ap.add_argument('--no-histograms', action='store_true',
                    help='discovery.histograms false: discovered topics without latency histograms')
    ap.add_argument('--domain', type=int, default=0)
    ap.add_argument('--out')
    ap.add_argument('--first', type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument('--count', type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.role == 'pub':
        if 'ROS_AUTOMATIC_DISCOVERY_RANGE' not in os.environ:
            raise SystemExit('the pub role runs under the bench (network rule)')
        return role_pub(args)
    return bench(args)


if __name__ == '__main__':
    sys.exit(main())
