#!/usr/bin/env python3
"""Soak: the demo stack for a long time under churn and faults; memory, FDs, threads, series.

What runs (each its own process, on loopback, ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a
ROS_DOMAIN_ID of its own, in namespace /soak):

- sim_robot (camera off: two cores), topic_monitor, node_monitor, liquid_inference with
  config/demo.yaml's settings, `discovery.forget_after` / `forget_after` = `--forget-after`;
- an OTLP receiver (gRPC) the inference node exports to, stopped and restarted on the same port
  every `--otlp-period` s (the collector goes away and comes back);
- a churn node (`--role churn`): `--names` distinct topics created and destroyed over the churn
  phase (each lives `--lifetime` s, publishing at 2 Hz), sim_robot faults cycled through its
  parameters (rate, stamp lag, pause, enabled, reliability), a topic that changes type
  (String <-> Int32), garbage on an Imu-typed topic (random bytes, negative and zero stamps);
- sim_robot is SIGKILLed and restarted every `--kill-period` s during the churn phase.

Timeline: start, wait for every endpoint, warm up `--warmup` s, take the baseline sample, churn
for `--churn-fraction` of the remaining time, then quiet (churn node gone) until the end, so that
forgotten topics and nodes leave the scrape. Every `--sample-period` s: RSS, open FDs, threads and
CPU of each process (psutil), and the number of samples in each endpoint's scrape.

Writes `--out`/samples.csv, series.csv and summary.json, and prints the summary table:

    .venv/bin/python bench/soak.py --duration 3600 --out /tmp/soak      # the one-hour soak
    .venv/bin/python bench/soak.py --duration 120 --names 60 --forget-after 5 --sample-period 5

Targets (issue 12): no process exits; RSS growth after the first 10 minutes under 5 %/h; FDs and
threads flat; series back within 10 % of the baseline once churn stops.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Set

from common import free_port, scrape

REPO = Path(__file__).resolve().parents[1]
NS = '/soak'
NODES = ('topic_monitor', 'node_monitor', 'liquid_inference')


# ================================================================================================
# Child roles
# ================================================================================================

def role_otlp(args: argparse.Namespace) -> int:
    """A gRPC OTLP trace receiver on 127.0.0.1:`--port` (0: any); prints its port, counts spans,
    stops on SIGINT/SIGTERM."""
    from concurrent import futures
    import threading

    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    count = [0]

    class Servicer(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC name
            count[0] += sum(len(ss.spans) for rs in request.resource_spans
                            for ss in rs.scope_spans)
            return trace_service_pb2.ExportTraceServiceResponse()

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port(f'127.0.0.1:{args.port}')
    server.start()
    print(json.dumps({'port': port}), flush=True)
    stop.wait()
    server.stop(0.5)
    print(json.dumps({'spans': count[0]}), flush=True)
    return 0


def _garbage(rng: random.Random) -> bytes:
    """Bytes for an Imu-typed topic: a plain CDR header with odd stamps, or plain noise."""
    kind = rng.randrange(4)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
    sec = (-1, -(2 ** 31), 0, 2 ** 31 - 1)[rng.randrange(4)]
    body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
    return b'\x00\x01\x00\x00' + struct.pack('<iI', sec, rng.randrange(10 ** 9)) + body


def role_churn(args: argparse.Namespace) -> int:
    """Topics that come and go, sim_robot faults, a type-changing topic and garbage, for
    `--churn-s` seconds; then exits (its node leaves the graph)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient
    from sensor_msgs.msg import Imu
    from std_msgs.msg import Int32, String

    rclpy.init(args=['--ros-args', '-r', f'__ns:={NS}'])
    node = Node('soak_churn')
    rng = random.Random(12)
    start = time.monotonic()
    live: Dict[str, Any] = {}          # name -> (publisher, expires)
    made = [0]
    msg = String(data='churn')
    interval = args.churn_s / max(1, args.names)
    faults = [('imu.rate', 150.0, 200.0), ('odom.stamp_lag', 0.05, 0.0),
              ('chatter.paused', True, False), ('scan.enabled', False, True),
              ('odom.reliability', 'best_effort', 'reliable')]
    client = AsyncParameterClient(node, f'{NS}/sim_robot')
    fault_i = [0]
    morph = {'pub': node.create_publisher(String, 'soak/morph', 10), 'str': True}
    garbage = node.create_publisher(Imu, 'soak/garbage', 10)

    def tick() -> None:
        now = time.monotonic()
        while made[0] < args.names and now - start >= made[0] * interval:
            name = f'soak/churn_{made[0]:05d}'
            live[name] = (node.create_publisher(String, name, 10), now + args.lifetime)
            made[0] += 1
        for name, (pub, expires) in list(live.items()):
            if now >= expires:
                node.destroy_publisher(pub)
                del live[name]
            else:
                pub.publish(msg)
        garbage.publish(_garbage(rng))
        if morph['str']:
            morph['pub'].publish(String(data='m'))
        else:
            morph['pub'].publish(Int32(data=1))

    def switch_type() -> None:
        node.destroy_publisher(morph['pub'])
        morph['str'] = not morph['str']
        morph['pub'] = node.create_publisher(String if morph['str'] else Int32, 'soak/morph', 10)

    def fault() -> None:
        name, bad, good = faults[(fault_i[0] // 2) % len(faults)]
        value = bad if fault_i[0] % 2 == 0 else good
        fault_i[0] += 1
        if client.services_are_ready():
            client.set_parameters([Parameter(name, value=value)])   # no wait: it may be dead

    node.create_timer(0.5, tick)
    node.create_timer(10.0, switch_type)
    node.create_timer(args.fault_period / 2, fault)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    while time.monotonic() - start < args.churn_s:
        ex.spin_once(timeout_sec=0.1)
    # Put every fault back before leaving.
    if client.services_are_ready():
        f = client.set_parameters([Parameter(n, value=g) for n, _b, g in faults])
        ex.spin_until_future_complete(f, timeout_sec=5.0)
    print(json.dumps({'churned_names': made[0]}), flush=True)
    ex.shutdown()
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


# ================================================================================================
# The soak (parent: no rclpy)
# ================================================================================================



class Proc:
    def __init__(self, name: str, argv: List[str], env: Dict[str, str], log: Path,
                 pipe: bool = False) -> None:
        import psutil
        self.name, self.argv, self.env, self.log_path = name, argv, env, log
        self._log = open(log, 'ab')
        self.proc = subprocess.Popen(argv, env=env, cwd=REPO, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE if pipe else self._log,
                                     stderr=self._log, text=pipe)
        self.ps = psutil.Process(self.proc.pid)
        self.last_cpu: Optional[float] = None
        self.last_t: Optional[float] = None

    def line(self, timeout: float) -> Dict[str, Any]:
        import select
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if r:
                text = self.proc.stdout.readline()
                if text:
                    try:
                        return json.loads(text)
                    except ValueError:
                        continue
            if self.proc.poll() is not None:
                break
        raise RuntimeError(f'{self.name}: no reply in {timeout} s; see {self.log_path}')

    def sample(self, now: float) -> Dict[str, Any]:
        with self.ps.oneshot():
            t = self.ps.cpu_times()
            cpu = t.user + t.system
            row = {'rss_mb': self.ps.memory_info().rss / 2 ** 20, 'fds': self.ps.num_fds(),
                   'threads': self.ps.num_threads()}
        row['cpu_pct'] = (100.0 * (cpu - self.last_cpu) / (now - self.last_t)
                          if self.last_t is not None and now > self.last_t else None)
        self.last_cpu, self.last_t = cpu, now
        return row

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10.0) -> Optional[int]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def scrape_series(port: int) -> Optional[List[str]]:
    """The endpoint's series (each sample line without its value), None while it is down."""
    try:
        text = scrape(port, timeout=5)
    except OSError:
        return None
    return [ln.rsplit(' ', 1)[0] for ln in text.splitlines() if ln and not ln.startswith('#')]


def scrape_count(port: int) -> Optional[int]:
    keys = scrape_series(port)
    return None if keys is None else len(keys)


def slope_pct_per_h(ts: List[float], ys: List[float]) -> Optional[float]:
    """Least-squares slope of ys over ts (s), as % of the first value per hour."""
    if len(ts) < 3 or ys[0] <= 0:
        return None
    n = len(ts)
    mt, my = sum(ts) / n, sum(ys) / n
    den = sum((t - mt) ** 2 for t in ts)
    if den == 0:
        return None
    k = sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / den
    return 100.0 * k * 3600.0 / ys[0]


def soak(args: argparse.Namespace) -> int:
    out = Path(args.out or tempfile.mkdtemp(prefix='soak-'))
    out.mkdir(parents=True, exist_ok=True)
    env = os.environ.copy()
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'        # network rule
    env['ROS_DOMAIN_ID'] = str(args.domain or 51 + os.getpid() % 10)
    env['RMW_IMPLEMENTATION'] = 'rmw_fastrtps_cpp'
    env['PYTHONUNBUFFERED'] = '1'
    py = sys.executable
    ports = {n: free_port() for n in NODES}
    params = REPO / 'config' / 'demo.yaml'
    me = [py, str(Path(__file__).resolve())]

    otlp = Proc('otlp', [*me, '--role', 'otlp', '--port', '0'], env, out / 'otlp.log', pipe=True)
    otlp_port = otlp.line(30)['port']
    env_inf = dict(env, OTEL_EXPORTER_OTLP_ENDPOINT=f'http://127.0.0.1:{otlp_port}')

    def entry(exe: str, *extra: str) -> List[str]:
        return [py, '-m', 'liquid_edge_ros_monitor.entry', exe, '--ros-args',
                '-r', f'__ns:={NS}', *extra]

    sim_argv = entry('sim_robot', '-p', 'camera.enabled:=false')
    procs: Dict[str, Proc] = {'sim_robot': Proc('sim_robot', sim_argv, env, out / 'sim_robot.log')}
    fa = f'{args.forget_after}'
    extra = {'topic_monitor': ['-p', f'discovery.forget_after:={fa}'],
             'node_monitor': ['-p', f'forget_after:={fa}'],
             'liquid_inference': []}
    for n in NODES:
        procs[n] = Proc(n, entry(n, '--params-file', str(params), '-p',
                                 f'metrics_port:={ports[n]}', *extra[n]),
                        env_inf if n == 'liquid_inference' else env, out / f'{n}.log')
    t0 = time.monotonic()
    deadline = t0 + 120
    while any(scrape_count(p) is None for p in ports.values()):
        if time.monotonic() > deadline:
            raise SystemExit(f'endpoints not up in 120 s; logs in {out}')
        time.sleep(0.5)
    time.sleep(args.warmup)

    rows: List[Dict[str, Any]] = []
    series: List[Dict[str, Any]] = []
    exits: List[str] = []
    restarts = 0
    churn: Optional[Proc] = None
    t_start = time.monotonic()
    end = t0 + args.duration
    churn_s = max(10.0, (end - t_start) * args.churn_fraction)
    last_kill = last_otlp = t_start
    otlp_down_since: Optional[float] = None
    next_sample = t_start
    first_keys: Dict[str, Set[str]] = {}      # endpoint -> series at the baseline
    last_keys: Dict[str, Set[str]] = {}       # ... and at the latest sample

    def sample(now: float, phase: str) -> None:
        t = round(now - t_start, 1)
        for name, p in procs.items():
            if p.proc.poll() is not None:
                continue
            try:
                rows.append({'t': t, 'phase': phase, 'process': name, **p.sample(now)})
            except Exception:   # noqa: BLE001 - gone between poll and sample
                pass
        for n, port in ports.items():
            keys = scrape_series(port)
            if keys is not None:
                first_keys.setdefault(n, set(keys))
                last_keys[n] = set(keys)
            series.append({'t': t, 'phase': phase, 'endpoint': n,
                           'samples': None if keys is None else len(keys)})

    sample(time.monotonic(), 'baseline')
    churn = Proc('churn', [*me, '--role', 'churn', '--names', str(args.names),
                           '--churn-s', str(churn_s), '--lifetime', str(args.lifetime),
                           '--fault-period', str(args.fault_period)], env, out / 'churn.log')
    next_sample += args.sample_period
    try:
        while time.monotonic() < end:
            now = time.monotonic()
            churning = now - t_start < churn_s
            for name, p in procs.items():
                code = p.proc.poll()
                if code is not None:
                    exits.append(f'{name} exited {code} at {now - t_start:.0f} s')
                    procs[name] = Proc(name, p.argv, p.env, p.log_path)   # keep the stack up
            if churning and args.kill_period and now - last_kill >= args.kill_period:
                procs['sim_robot'].stop(signal.SIGKILL)                 # killed, not stopped
                procs['sim_robot'] = Proc('sim_robot', sim_argv, env, out / 'sim_robot.log')
                restarts += 1
                last_kill = now
            if churning and args.otlp_period:
                if otlp_down_since is None and now - last_otlp >= args.otlp_period:
                    otlp.stop()
                    otlp_down_since = now
                elif otlp_down_since is not None and now - otlp_down_since >= args.otlp_period / 3:
                    otlp = Proc('otlp', [*me, '--role', 'otlp', '--port', str(otlp_port)], env,
                                out / 'otlp.log', pipe=True)
                    otlp.line(30)
                    otlp_down_since, last_otlp = None, now
            if now >= next_sample:
                sample(now, 'churn' if churning else 'quiet')
                next_sample += args.sample_period
            time.sleep(0.2)
        sample(time.monotonic(), 'end')
    finally:
        if churn.proc.poll() is None:
            churn.stop()
        for p in procs.values():
            p.stop()
        otlp.stop()

    keys = ['t', 'phase', 'process', 'rss_mb', 'fds', 'threads', 'cpu_pct']
    with open(out / 'samples.csv', 'w', newline='') as f:
        w = csv.DictWriter(f, keys)
        w.writeheader()
        w.writerows(rows)
    with open(out / 'series.csv', 'w', newline='') as f:
        w = csv.DictWriter(f, ['t', 'phase', 'endpoint', 'samples'])
        w.writeheader()
        w.writerows(series)
    summary = summarize(rows, series, exits, restarts, args, churn_s)
    for n, ser in summary['series'].items():    # which series the end has that the start had not
        ser['new_at_end'] = sorted(last_keys.get(n, set()) - first_keys.get(n, set()))[:20]
        ser['gone_at_end'] = sorted(first_keys.get(n, set()) - last_keys.get(n, set()))[:20]
    summary['out'] = str(out)
    (out / 'summary.json').write_text(json.dumps(summary, indent=1) + '\n')
    print(table(summary))
    return 0


def summarize(rows: List[Dict[str, Any]], series: List[Dict[str, Any]], exits: List[str],
              restarts: int, args: argparse.Namespace, churn_s: float) -> Dict[str, Any]:
    growth_from = min(600.0, args.duration / 4)     # "after the first 10 minutes"
    procs: Dict[str, Any] = {}
    for name in NODES:
        mine = [r for r in rows if r['process'] == name]
        if not mine:
            continue
        late = [r for r in mine if r['t'] >= growth_from] or mine
        cpu = [r['cpu_pct'] for r in mine if r['cpu_pct'] is not None]
        procs[name] = {
            'rss_mb_start': round(mine[0]['rss_mb'], 1), 'rss_mb_end': round(mine[-1]['rss_mb'], 1),
            'rss_mb_max': round(max(r['rss_mb'] for r in mine), 1),
            'rss_growth_pct_per_h': (lambda g: None if g is None else round(g, 2))(
                slope_pct_per_h([r['t'] for r in late], [r['rss_mb'] for r in late])),
            'fds': [mine[0]['fds'], min(r['fds'] for r in mine), max(r['fds'] for r in mine),
                    mine[-1]['fds']],
            'threads': [mine[0]['threads'], min(r['threads'] for r in mine),
                        max(r['threads'] for r in mine), mine[-1]['threads']],
            'cpu_pct_mean': round(sum(cpu) / len(cpu), 1) if cpu else None,
        }
    ser: Dict[str, Any] = {}
    for n in NODES:
        mine = [s['samples'] for s in series if s['endpoint'] == n and s['samples'] is not None]
        if mine:
            ser[n] = {'baseline': mine[0], 'peak': max(mine), 'end': mine[-1],
                      'end_vs_baseline_pct': round(100.0 * (mine[-1] - mine[0]) / mine[0], 1)}
    return {'duration_s': args.duration, 'churn_s': round(churn_s), 'names': args.names,
            'forget_after_s': args.forget_after, 'sample_period_s': args.sample_period,
            'growth_measured_from_s': growth_from, 'sim_robot_kills': restarts,
            'unexpected_exits': exits, 'processes': procs, 'series': ser}


def table(s: Dict[str, Any]) -> str:
    lines = [f"soak {s['duration_s']} s (churn {s['churn_s']} s, {s['names']} names, "
             f"forget_after {s['forget_after_s']} s, sim_robot killed {s['sim_robot_kills']}x); "
             f"unexpected exits: {s['unexpected_exits'] or 'none'}",
             '| process | RSS MB start / max / end | RSS growth %/h (after '
             f"{s['growth_measured_from_s']:.0f} s) | FDs start/min/max/end | "
             'threads start/min/max/end | CPU % mean | series baseline / peak / end |',
             '|---|---|---|---|---|---|---|']
    for n, p in s['processes'].items():
        se = s['series'].get(n, {})
        lines.append(
            f"| {n} | {p['rss_mb_start']} / {p['rss_mb_max']} / {p['rss_mb_end']} | "
            f"{p['rss_growth_pct_per_h']} | {'/'.join(map(str, p['fds']))} | "
            f"{'/'.join(map(str, p['threads']))} | {p['cpu_pct_mean']} | "
            f"{se.get('baseline')} / {se.get('peak')} / {se.get('end')} "
            f"({se.get('end_vs_baseline_pct')} %) |")
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--role', choices=('soak', 'churn', 'otlp'), default='soak')
    ap.add_argument('--duration', type=float, default=3600.0, help='whole run, seconds')
    ap.add_argument('--names', type=int, default=2000, help='distinct churn topics over the run')
    ap.add_argument('--lifetime', type=float, default=6.0, help='seconds each churn topic lives')
    ap.add_argument('--forget-after', type=float, default=300.0,
                    help="monitors' discovery.forget_after / forget_after, seconds")
    ap.add_argument('--warmup', type=float, default=10.0, help='seconds before the baseline')
    ap.add_argument('--churn-fraction', type=float, default=0.6,
                    help='share of the time after the baseline spent churning')
    ap.add_argument('--sample-period', type=float, default=10.0)
    ap.add_argument('--kill-period', type=float, default=300.0,
                    help='SIGKILL and restart sim_robot this often while churning (0: never)')
    ap.add_argument('--otlp-period', type=float, default=120.0,
                    help='stop the OTLP receiver this often while churning, back a third later')
    ap.add_argument('--fault-period', type=float, default=20.0,
                    help='a sim_robot fault on, then off, every this many seconds')
    ap.add_argument('--domain', type=int, default=0, help='ROS_DOMAIN_ID (default 51..60)')
    ap.add_argument('--out', help='directory for samples.csv, series.csv, summary.json')
    ap.add_argument('--port', type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument('--churn-s', type=float, default=60.0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.role != 'soak' and 'ROS_AUTOMATIC_DISCOVERY_RANGE' not in os.environ:
        raise SystemExit('roles run under the soak (network rule)')
    return {'soak': soak, 'churn': role_churn, 'otlp': role_otlp}[args.role](args)


if __name__ == '__main__':
    sys.exit(main())
