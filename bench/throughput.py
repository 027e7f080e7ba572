#!/usr/bin/env python3
"""Topic monitor throughput: the highest sensor_msgs/Imu rate the monitor fully accounts for.

Side by side, in one run, with a bare rclpy raw subscriber that does nothing but count:

- publisher(s): separate process(es) that publish one pre-serialized Imu (`serialize_message` once,
  `publisher.publish(bytes)`), RELIABLE, KEEP_LAST `--depth`, at a fixed target rate with
  absolute-deadline scheduling, for a fixed count (rate x `--duration`), after waiting (with a
  deadline) until the subject's subscription is matched;
- subject "monitor": the real node, `python -m liquid_edge_ros_monitor.topics.node --ros-args
  --params-file <tmp.yaml>`, one listed topic, `qos_depth` = `--depth`; its count is
  `liquid_edge_topic_messages_total` scraped from its Prometheus endpoint once the publisher is done
  and the count has settled;
- subject "bare-<executor>": a raw subscriber counting in a callback (`events`: the rclpy
  EventsExecutor, `single`: SingleThreadedExecutor) or in a `_rclpy.WaitSet` + `take_message` loop
  (`waitset`); its count is asked for over a pipe.

Each subject has its own topic and stays up for the whole run; at every rate step the subjects take
turns (A B A B ...), so drift on the machine hits all of them. A step passes when counted ==
published in every try (`--tries`); a subject stops after failing two steps in a row. CPU is the
subject's process CPU time (user+sys, psutil) between the publisher's first and last message.

Every process started here runs with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a ROS_DOMAIN_ID in
41..50 (`--domain`, or $BENCH_ROS_DOMAIN_ID), and is stopped at the end (children also get SIGINT if
this process dies).

    .venv/bin/python bench/throughput.py                 # ~3-5 min on 2 cores
    .venv/bin/python bench/throughput.py --bare events,waitset,single --rates 2000,4000,6000
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from common import cpu_model, scrape

REPO = Path(__file__).resolve().parents[1]
DOMAINS = range(41, 51)
BARE_MODES = ('events', 'single', 'waitset')
DEFAULT_RATES = ('2000,5000,10000,14000,16000,18000,20000,22000,24000,26000,28000,30000,32000,'
                 '34000')


# ================================================================================================
# Child roles (run in their own processes; they import rclpy, the parent does not)
# ================================================================================================

def _say(obj: Dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + '\n')
    sys.stdout.flush()


def _qos(depth: int) -> Any:
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def role_publisher(args: argparse.Namespace) -> int:
    """Publish on command: stdin `{"cmd": "run", "topic", "rate", "count", "match_timeout"}`;
    `quit` (or EOF) ends it."""
    import rclpy
    from rclpy.node import Node
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Imu

    rclpy.init(args=[])
    node = Node(f'bench_publisher_{os.getpid()}')
    pubs = {t: node.create_publisher(Imu, t, _qos(args.depth)) for t in args.topics.split(',')}
    msg = Imu()
    msg.header.frame_id = 'imu_link'
    msg.header.stamp = node.get_clock().now().to_msg()
    msg.orientation.w = 1.0
    msg.angular_velocity.z = 0.1
    msg.linear_acceleration.z = 9.81
    data = serialize_message(msg)
    _say({'event': 'ready', 'size': len(data)})
    try:
        for line in sys.stdin:
            if not line.strip().startswith('{'):
                break                   # `quit`
            cmd = json.loads(line)
            pub = pubs[cmd['topic']]
            deadline = time.monotonic() + cmd['match_timeout']
            while pub.get_subscription_count() < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            if pub.get_subscription_count() < 1:
                _say({'event': 'done', 'matched': False, 'published': 0})
                continue
            n, period = int(cmd['count']), 1.0 / float(cmd['rate'])
            publish, clock, sleep = pub.publish, time.perf_counter, time.sleep
            _say({'event': 'start'})
            cpu0 = time.process_time()
            late_max = 0.0
            t0 = clock()
            for i in range(n):
                ahead = t0 + i * period - clock()
                if ahead > 0.0002:      # sleep rather than spin: the subject needs the other core
                    sleep(ahead)
                elif ahead < late_max:
                    late_max = ahead
                publish(data)
            elapsed = clock() - t0
            _say({'event': 'done', 'matched': True, 'published': n, 'elapsed_s': elapsed,
                  'rate_hz': n / elapsed if elapsed > 0 else 0.0,
                  'cpu_s': time.process_time() - cpu0, 'max_late_s': -late_max})
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def role_bare(args: argparse.Namespace) -> int:
    """Count raw messages; stdin `count` -> `{"count": n}`, `quit` (or EOF) -> exit."""
    import rclpy
    from rclpy.node import Node
    from rclpy.task import Future
    from sensor_msgs.msg import Imu

    rclpy.init(args=[])
    node = Node(f'bench_bare_{args.mode}_{os.getpid()}')
    count = [0]
    stop = threading.Event()

    def control() -> None:
        for line in sys.stdin:
            if line.strip() == 'count':
                _say({'count': count[0]})
            else:
                break
        stop.set()

    if args.mode in ('events', 'single'):
        def on_message(_data: bytes) -> None:
            count[0] += 1
        node.create_subscription(Imu, args.topic, on_message, _qos(args.depth), raw=True)
        if args.mode == 'events':
            from rclpy.experimental import EventsExecutor
            executor: Any = EventsExecutor()
        else:
            from rclpy.executors import SingleThreadedExecutor
            executor = SingleThreadedExecutor()
        executor.add_node(node)
        threading.Thread(target=control, daemon=True).start()
        _say({'event': 'ready'})
        # EventsExecutor.spin() hangs in Kilted once another Python thread exists (here: the
        # control thread), and does not return on shutdown; spin_until_future_complete with a
        # timeout releases the GIL and returns. Both executors get the same bounded loop.
        never = Future()
        try:
            while not stop.is_set() and node.context.ok():
                if args.mode == 'events':
                    executor.spin_until_future_complete(never, timeout_sec=0.5)
                else:
                    executor.spin_once(timeout_sec=0.5)
        except Exception:   # ExternalShutdownException, KeyboardInterrupt
            pass
        finally:
            try:
                executor.shutdown(timeout_sec=2.0)
            except Exception:
                pass
    else:
        from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
        sub = node.create_subscription(Imu, args.topic, lambda _m: None, _qos(args.depth),
                                       raw=True)
        threading.Thread(target=control, daemon=True).start()
        _say({'event': 'ready'})
        context = node.context
        with context.handle:
            wait_set = _rclpy.WaitSet(1, 0, 0, 0, 0, 0, context.handle)
        take, msg_type = sub.handle.take_message, sub.msg_type
        try:
            with sub.handle:
                while not stop.is_set() and context.ok():
                    wait_set.clear_entities()
                    wait_set.add_subscription(sub.handle)
                    wait_set.wait(100_000_000)      # ns: re-check `stop` every 0.1 s
                    n = 0
                    while take(msg_type, True) is not None:
                        n += 1
                    count[0] += n
        except Exception:   # the context was shut down under us
            pass
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


# ================================================================================================
# Parent: process management
# ================================================================================================

def _die_with_parent() -> None:
    """preexec_fn: SIGINT the child (a clean Fast DDS exit) if the benchmark process dies."""
    try:
        import ctypes
        ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGINT)   # PR_SET_PDEATHSIG
    except Exception:
        pass


class Child:
    """A child process; JSON lines on its stdout, commands on its stdin."""

    def __init__(self, name: str, argv: List[str], env: Dict[str, str], log_path: Path,
                 pipe_stdout: bool = True, cwd: Path = REPO) -> None:
        import psutil
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, 'wb')
        self.proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE if pipe_stdout else self._log, stderr=self._log,
            text=True, bufsize=1, preexec_fn=_die_with_parent)
        self.ps = psutil.Process(self.proc.pid)
        self._lines: List[str] = []
        self._cv = threading.Condition()
        if pipe_stdout:
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._cv:
                self._lines.append(line)
                self._cv.notify_all()
        with self._cv:
            self._cv.notify_all()

    def send(self, text: str) -> None:
        self.proc.stdin.write(text + '\n')
        self.proc.stdin.flush()

    def recv(self, timeout: float, key: Optional[str] = None) -> Dict[str, Any]:
        """The next JSON line (with `key`, when given), or raise after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                while self._lines:
                    line = self._lines.pop(0).strip()
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        continue
                    if key is None or key in obj:
                        return obj
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise RuntimeError(f'{self.name}: no reply within {timeout:.0f} s '
                                       f'(exit code {self.proc.poll()}); see {self.log_path}')
                self._cv.wait(min(left, 0.5))

    def cpu_s(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def stop(self, polite: str = 'quit', timeout: float = 8.0) -> Optional[int]:
        if self.proc.poll() is None:
            try:
                if polite:
                    self.send(polite)
                else:               # Ctrl-C, as a user stops a node
                    self.proc.send_signal(signal.SIGINT)
                self.proc.stdin.close()
            except (BrokenPipeError, OSError, ValueError):
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGINT)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


class Subject:
    """Something that counts messages on its own topic."""

    name = ''
    topic = ''
    child: Child
    settle_quiet_s = 0.3

    def count(self) -> int:
        raise NotImplementedError


class BareSubject(Subject):
    def __init__(self, mode: str, topic: str, args: argparse.Namespace, env: Dict[str, str],
                 tmp: Path) -> None:
        self.name, self.mode, self.topic = f'bare-{mode}', mode, topic
        self.child = Child(self.name, [sys.executable, str(Path(__file__).resolve()), '--role',
                                       'bare', '--mode', mode, '--topic', topic,
                                       '--depth', str(args.depth)],
                           env, tmp / f'{self.name}.log')
        self.child.recv(60, 'event')

    def count(self) -> int:
        self.child.send('count')
        return int(self.child.recv(10, 'count')['count'])


class MonitorSubject(Subject):
    """The real topic_monitor node; counts from its Prometheus endpoint."""

    def __init__(self, topic: str, args: argparse.Namespace, env: Dict[str, str],
                 tmp: Path) -> None:
        self.name, self.topic = 'monitor', topic
        self.settle_quiet_s = 1.5 * args.update_period + 0.3
        params = tmp / 'monitor_params.yaml'
        params.write_text(
            '/**:\n'
            '  ros__parameters:\n'
            f'    window: {args.window}\n'
            f'    window_capacity: {args.window_capacity}\n'
            f'    update_period: {args.update_period}\n'
            f'    qos_depth: {args.monitor_qos_depth or args.depth}\n'
            '    metrics_port: 0\n'
            '    metrics_address: 127.0.0.1\n'
            '    discovery:\n'
            '      enabled: false\n'
            '    topics: [bench]\n'
            '    topic:\n'
            '      bench:\n'
            f'        name: {topic}\n')
        cwd = REPO
        if args.monitor_path:       # a modified copy of the package, to compare against
            cwd = Path(args.monitor_path).resolve()
            env = dict(env, PYTHONPATH=str(cwd) + os.pathsep + env.get('PYTHONPATH', ''))
        self.child = Child('monitor', [sys.executable, '-m',
                                       'liquid_edge_ros_monitor.topics.node', '--ros-args',
                                       '--params-file', str(params)],
                           env, tmp / 'monitor.log', pipe_stdout=False, cwd=cwd)
        deadline = time.monotonic() + 60
        port = None
        while port is None:
            text = self.child.log_path.read_text(errors='replace')
            m = re.search(r'metrics on http://[0-9.]+:(\d+)/metrics', text)
            if m:
                port = int(m.group(1))
            elif self.child.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f'topic_monitor did not start; see {self.child.log_path}:\n'
                                   + text[-2000:])
            else:
                time.sleep(0.1)
        self.port = port
        self._pattern = re.compile(r'^liquid_edge_topic_messages_total\{([^}]*)\}\s+(\S+)', re.M)

    def count(self) -> int:
        text = scrape(self.port, timeout=5)
        for labels, value in self._pattern.findall(text):
            if f'topic="{self.topic}"' in labels:
                return int(float(value))
        return 0   # no report yet (no message received yet)


# ================================================================================================
# Parent: the measurement
# ================================================================================================

def machine_busy() -> float:
    import psutil
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, 'steal', 0.0)


def run_once(subject: Subject, publishers: List[Child], rate: float, count: int,
             args: argparse.Namespace) -> Dict[str, Any]:
    """Publish `count` messages at `rate` to `subject`; return what it counted and what it cost."""
    share = [count // len(publishers) + (1 if i < count % len(publishers) else 0)
             for i in range(len(publishers))]
    before = subject.count()
    for p, n in zip(publishers, share):
        p.send(json.dumps({'cmd': 'run', 'topic': subject.topic, 'rate': rate / len(publishers),
                           'count': n, 'match_timeout': args.match_timeout}))
    # Each publisher says 'start' once matched (then publishes), or 'done' unmatched.
    starts = [p.recv(args.match_timeout + 10, 'event') for p in publishers]
    if any(s['event'] != 'start' for s in starts):
        for p, s in zip(publishers, starts):
            if s['event'] == 'start':
                p.recv(count / rate * 5 + 30, 'event')
        return {'matched': False, 'passed': False, 'published': 0, 'counted': 0}
    cpu0, t0, busy0 = subject.child.cpu_s(), time.monotonic(), machine_busy()
    pub_cpu0 = sum(p.cpu_s() for p in publishers)
    dones = [p.recv(count / rate * 5 + 30, 'event') for p in publishers]
    cpu1, t1, busy1 = subject.child.cpu_s(), time.monotonic(), machine_busy()
    pub_cpu1 = sum(p.cpu_s() for p in publishers)
    published = sum(d['published'] for d in dones)
    # Settle: the expected count, or no change for settle_quiet_s, or the deadline.
    expected = before + published
    last, last_change = subject.count(), time.monotonic()
    deadline = time.monotonic() + args.settle_timeout
    while last != expected and time.monotonic() < deadline:
        time.sleep(0.1)
        now_count = subject.count()
        if now_count != last:
            last, last_change = now_count, time.monotonic()
        elif time.monotonic() - last_change > subject.settle_quiet_s:
            break
    settled_s = time.monotonic() - t1
    elapsed = max(d['elapsed_s'] for d in dones)
    counted = last - before
    cpu = cpu1 - cpu0
    wall = t1 - t0
    others = (busy1 - busy0) - cpu - (pub_cpu1 - pub_cpu0)
    return {
        'matched': True, 'published': published, 'counted': counted,
        'passed': counted == published, 'lost': published - counted,
        'pub_rate_hz': published / elapsed if elapsed > 0 else 0.0,
        'pub_elapsed_s': elapsed, 'pub_max_late_s': max(d['max_late_s'] for d in dones),
        'pub_cpu_cores': (pub_cpu1 - pub_cpu0) / wall if wall > 0 else 0.0,
        'cpu_s': cpu, 'cpu_cores': cpu / wall if wall > 0 else 0.0,
        'cpu_per_1k_rate': cpu / (published / 1000.0) if published else None,
        'other_load_cores': max(0.0, others / wall) if wall > 0 else 0.0,
        'settle_s': settled_s,
    }


def idle_cpu(subjects: List[Subject], seconds: float) -> Dict[str, float]:
    c0 = {s.name: s.child.cpu_s() for s in subjects}
    time.sleep(seconds)
    return {s.name: (s.child.cpu_s() - c0[s.name]) / seconds for s in subjects}


def choose_domain(args: argparse.Namespace) -> int:
    value = args.domain or os.environ.get('BENCH_ROS_DOMAIN_ID')
    domain = int(value) if value else DOMAINS[os.getpid() % len(DOMAINS)]
    if domain not in DOMAINS:
        raise SystemExit(f'error: the ROS domain must be in 41..50, got {domain}')
    return domain


def machine_info() -> Dict[str, Any]:
    import platform
    info: Dict[str, Any] = {'nproc': os.cpu_count(), 'python': platform.python_version()}
    info['cpu_model'] = cpu_model()
    try:
        mem = re.search(r'^MemTotal:\s*(\d+) kB', Path('/proc/meminfo').read_text(), re.M)
        info['ram_gib'] = round(int(mem.group(1)) / 2**20, 1) if mem else None
    except OSError:
        pass
    try:
        from importlib.metadata import version
        info['ros_rclpy'] = version('ros-rclpy')
        info['ros_fastdds'] = version('ros-fastdds')
    except Exception:
        pass
    info['loadavg_start'] = os.getloadavg()
    return info


def summarize(results: Dict[str, Any]) -> str:
    subjects = results['subjects']
    rates = sorted({s['rate'] for name in subjects for s in results['steps'][name]})
    lines = []
    header = f"{'target/s':>9} " + ' '.join(f'{n:>30}' for n in subjects)
    lines.append(header)
    sub_header = f"{'counted/published  pub/s  cpu/1k':>30}"
    lines.append(f"{'':>9} " + ' '.join(sub_header for _ in subjects))
    for rate in rates:
        cells = []
        for name in subjects:
            step = next((s for s in results['steps'][name] if s['rate'] == rate), None)
            if step is None:
                cells.append(f"{'-':>30}")
                continue
            tries = step['tries']
            mark = 'PASS' if step['passed'] else 'FAIL'
            worst = min(tries, key=lambda t: (t['passed'], t.get('counted', 0)))
            cpu = [t['cpu_per_1k_rate'] for t in tries if t.get('cpu_per_1k_rate') is not None]
            cpu_s = f'{sum(cpu) / len(cpu):.3f}' if cpu else '-'
            pubr = min(t.get('pub_rate_hz', 0.0) for t in tries)
            cells.append(f"{mark} {worst['counted']:>6}/{worst['published']:<6} {pubr:>6.0f}"
                         f" {cpu_s:>6}")
        lines.append(f'{rate:>9} ' + ' '.join(f'{c:>30}' for c in cells))
    lines.append('')
    for name in subjects:
        c = results['ceilings'][name]
        lines.append(f"{name:>14}: ceiling {c['rate'] or 'none'} msgs/s target"
                     + (f" (publisher achieved {c['pub_rate_hz']:.0f}/s)" if c['rate'] else '')
                     + (' -- PUBLISHER-LIMITED' if c.get('publisher_limited') else '')
                     + (' (never failed: a lower bound)' if c.get('lower_bound') else ''))
    r = results.get('ratio')
    if r is not None:
        lines.append(f"monitor / {results['bare_best']}: {r:.2f} (target >= 0.85)")
    if results.get('cpu_compare'):
        cc = results['cpu_compare']
        lines.append(f"CPU per 1k msgs/s at {cc['rate']} msgs/s: "
                     + ', '.join(f'{k} {v:.3f}' for k, v in cc['cpu_per_1k_rate'].items()))
    lines.append('idle CPU (cores): '
                 + ', '.join(f'{k} {v:.3f}' for k, v in results['idle_cpu_cores'].items()))
    return '\n'.join(lines)


def bench(args: argparse.Namespace) -> int:
    domain = choose_domain(args)
    env = dict(os.environ)
    env.update(ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST', ROS_DOMAIN_ID=str(domain),
               RMW_IMPLEMENTATION='rmw_fastrtps_cpp', PYTHONUNBUFFERED='1')
    env.pop('ROS_LOCALHOST_ONLY', None)
    env['PYTHONPATH'] = str(REPO) + os.pathsep + env.get('PYTHONPATH', '')
    os.environ.update(ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST', ROS_DOMAIN_ID=str(domain))
    rates = [int(float(r)) for r in args.rates.split(',') if r.strip()]
    bare_modes = [m.strip() for m in args.bare.split(',') if m.strip()]
    for m in bare_modes:
        if m not in BARE_MODES:
            raise SystemExit(f'error: --bare: unknown executor {m!r} (choose from {BARE_MODES})')
    base = f'/bench_throughput_{os.getpid()}'
    started = time.monotonic()
    info = machine_info()
    print(f"ROS_DOMAIN_ID={domain}; {info.get('nproc')} CPUs ({info.get('cpu_model')}); "
          f"load average {info['loadavg_start'][0]:.2f}", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix='bench_throughput_'))
    subjects: List[Subject] = []
    publishers: List[Child] = []

    def on_term(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    results: Dict[str, Any] = {}
    try:
        if not args.no_monitor:
            subjects.append(MonitorSubject(f'{base}/monitor', args, env, tmp))
        for m in bare_modes:
            subjects.append(BareSubject(m, f'{base}/bare_{m}', args, env, tmp))
        if not subjects:
            raise SystemExit('error: nothing to measure')
        topics = ','.join(s.topic for s in subjects)
        for i in range(args.publishers):
            p = Child(f'publisher{i}', [sys.executable, str(Path(__file__).resolve()), '--role',
                                        'publisher', '--topics', topics,
                                        '--depth', str(args.depth)],
                      env, tmp / f'publisher{i}.log')
            publishers.append(p)
        size = [p.recv(60, 'event') for p in publishers][0]['size']
        print(f'subjects: {", ".join(s.name for s in subjects)}; {args.publishers} publisher '
              f'process(es); Imu {size} bytes serialized; {args.duration:g} s per try', flush=True)
        # Warm-up: match every subject and take one small burst, not counted.
        for s in subjects:
            w = run_once(s, publishers, 1000.0, 200, args)
            if not w['matched']:
                raise RuntimeError(f'{s.name}: publisher never matched its subscription')
        idle = idle_cpu(subjects, 2.0)

        steps: Dict[str, List[Dict[str, Any]]] = {s.name: [] for s in subjects}
        active = {s.name: True for s in subjects}
        fails = {s.name: 0 for s in subjects}
        stopped_by_time = False
        for rate in rates:
            live = [s for s in subjects if active[s.name]]
            if not live:
                break
            if time.monotonic() - started > args.max_time:
                stopped_by_time = True
                break
            count = max(1, int(round(rate * args.duration)))
            tries: Dict[str, List[Dict[str, Any]]] = {s.name: [] for s in live}
            for t in range(args.tries):
                for s in live:                                   # A B A B ...
                    if tries[s.name] and not all(x['passed'] for x in tries[s.name]):
                        continue                                 # this step already failed
                    r = run_once(s, publishers, float(rate), count, args)
                    r['try'] = t + 1
                    tries[s.name].append(r)
                    print(f"{rate:>6}/s {s.name:>14} try {t + 1}: "
                          f"{r['counted']:>7}/{r['published']:<7} "
                          f"{'ok  ' if r['passed'] else 'LOST'}"
                          f" pub {r.get('pub_rate_hz', 0):7.0f}/s"
                          f"  cpu {r.get('cpu_cores', 0):.2f} cores"
                          f"  others {r.get('other_load_cores', 0):.2f}", flush=True)
            for s in live:
                passed = len(tries[s.name]) == args.tries and all(x['passed']
                                                                  for x in tries[s.name])
                steps[s.name].append({'rate': rate, 'count': count, 'passed': passed,
                                      'tries': tries[s.name]})
                fails[s.name] = 0 if passed else fails[s.name] + 1
                if fails[s.name] >= 2:
                    active[s.name] = False
            # Nothing more to learn once the publisher cannot reach the target any more.
            pub_rates = [x['pub_rate_hz'] for s in live for x in tries[s.name] if x['matched']]
            if pub_rates and max(pub_rates) < args.pub_shortfall * rate:
                print(f'publisher reached only {max(pub_rates):.0f}/s of {rate}/s: stopping the '
                      'ramp (try --publishers 2)', flush=True)
                break

        ceilings: Dict[str, Any] = {}
        for s in subjects:
            ok = [st for st in steps[s.name] if st['passed']]
            best = max(ok, key=lambda st: st['rate']) if ok else None
            if best is None:
                ceilings[s.name] = {'rate': None}
                continue
            pr = min(t['pub_rate_hz'] for t in best['tries'])
            failed_above = any(not st['passed'] and st['rate'] > best['rate']
                               for st in steps[s.name])
            ceilings[s.name] = {
                'rate': best['rate'], 'pub_rate_hz': pr,
                'cpu_per_1k_rate': sum(t['cpu_per_1k_rate'] for t in best['tries'])
                / len(best['tries']),
                'publisher_limited': pr < args.pub_shortfall * best['rate'],
                'lower_bound': not failed_above}
        bare_names = [s.name for s in subjects if s.name != 'monitor']
        bare_best = max(bare_names, key=lambda n: ceilings[n]['rate'] or 0) if bare_names else None
        ratio = None
        if 'monitor' in ceilings and bare_best and ceilings[bare_best]['rate']:
            ratio = (ceilings['monitor']['rate'] or 0) / ceilings[bare_best]['rate']
        # CPU per 1k msgs/s at the highest rate every subject passed.
        common = None
        passed_sets = [{st['rate'] for st in steps[s.name] if st['passed']} for s in subjects]
        both = set.intersection(*passed_sets) if passed_sets else set()
        if both:
            rate = max(both)
            common = {'rate': rate, 'cpu_per_1k_rate': {}, 'cpu_cores': {}}
            for s in subjects:
                st = next(x for x in steps[s.name] if x['rate'] == rate)
                common['cpu_per_1k_rate'][s.name] = (sum(t['cpu_per_1k_rate'] for t in st['tries'])
                                                     / len(st['tries']))
                common['cpu_cores'][s.name] = (sum(t['cpu_cores'] for t in st['tries'])
                                               / len(st['tries']))
        info['loadavg_end'] = os.getloadavg()
        results = {
            'benchmark': 'topic_monitor_throughput', 'created': time.strftime('%Y-%m-%dT%H:%M:%S'),
            'command': ' '.join([Path(sys.executable).name, *sys.argv]),
            'settings': {'duration_s': args.duration, 'tries': args.tries, 'depth': args.depth,
                         'publishers': args.publishers, 'window_s': args.window,
                         'monitor_qos_depth': args.monitor_qos_depth or args.depth,
                         'window_capacity': args.window_capacity,
                         'update_period_s': args.update_period, 'rates': rates,
                         'ros_domain_id': domain, 'imu_serialized_bytes': size,
                         'monitor_path': args.monitor_path},
            'machine': info, 'subjects': [s.name for s in subjects],
            'idle_cpu_cores': idle, 'steps': steps, 'ceilings': ceilings,
            'bare_best': bare_best, 'ratio': ratio, 'cpu_compare': common,
            'stopped_by_time_limit': stopped_by_time,
            'wall_s': time.monotonic() - started,
        }
        print()
        print(summarize(results))
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + '\n')
        print(f'\nwrote {out} ({results["wall_s"]:.0f} s)')
        return 0
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return 130
    except RuntimeError as exc:
        # A child died or stopped answering: say which, with the end of its log, in place of a
        # traceback (the log directory is removed below unless --keep-logs).
        print(f'throughput: error: {exc}', file=sys.stderr)
        for child in [p for p in publishers] + [s.child for s in subjects]:
            if child.proc.poll() not in (None, 0):
                tail = child.log_path.read_text(errors='replace').splitlines()[-15:]
                print(f'--- last lines of {child.name}\'s log:', *tail, sep='\n', file=sys.stderr)
        return 1
    finally:
        for child in [p for p in publishers] + [s.child for s in subjects]:
            t = time.monotonic()
            try:
                code = child.stop(polite='' if child.name == 'monitor' else 'quit')
                if code not in (0, -signal.SIGINT) or time.monotonic() - t > 5:
                    print(f'{child.name} stopped with code {code} after '
                          f'{time.monotonic() - t:.1f} s', file=sys.stderr)
            except Exception as exc:
                print(f'stopping {child.name}: {exc}', file=sys.stderr)
        if args.keep_logs:
            print(f'logs kept in {tmp}', file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog='See docs/BENCHMARKS.md for results and how to read them.')
    ap.add_argument('--rates', default=DEFAULT_RATES,
                    help='comma-separated target rates, msgs/s, ascending (default %(default)s)')
    ap.add_argument('--duration', type=float, default=3.0,
                    help='seconds of publishing per try; count = rate x duration (default 3)')
    ap.add_argument('--tries', type=int, default=2,
                    help='tries per rate step; a step passes when all pass (default 2)')
    ap.add_argument('--bare', default='waitset',
                    help="bare subscriber(s) to compare with: any of events,single,waitset "
                         "(default %(default)s, the fastest measured here)")
    ap.add_argument('--no-monitor', action='store_true', help='measure bare subscribers only')
    ap.add_argument('--publishers', type=int, default=1,
                    help='publisher processes sharing the rate (default 1)')
    ap.add_argument('--depth', type=int, default=1000,
                    help='KEEP_LAST depth of publishers and subscribers (monitor qos_depth)')
    ap.add_argument('--monitor-qos-depth', type=int, default=None,
                    help="monitor 'qos_depth' when it should differ from --depth")
    ap.add_argument('--window', type=float, default=5.0, help="monitor 'window' (default 5 s)")
    ap.add_argument('--window-capacity', type=int, default=200000,
                    help="monitor 'window_capacity' (default %(default)s)")
    ap.add_argument('--update-period', type=float, default=1.0,
                    help="monitor 'update_period' (default 1 s)")
    ap.add_argument('--match-timeout', type=float, default=15.0,
                    help='seconds to wait for the subscription to match (default 15)')
    ap.add_argument('--settle-timeout', type=float, default=8.0,
                    help='seconds to wait for a count to settle after publishing (default 8)')
    ap.add_argument('--pub-shortfall', type=float, default=0.97,
                    help='a publisher below this fraction of the target rate is the limit; '
                         'the ramp stops there (default 0.97)')
    ap.add_argument('--max-time', type=float, default=270.0,
                    help='start no new rate step after this many seconds (default 270)')
    ap.add_argument('--domain', type=int, default=None,
                    help='ROS_DOMAIN_ID for every process, 41..50 (default $BENCH_ROS_DOMAIN_ID, '
                         'else one picked from the pid)')
    ap.add_argument('--out', default=str(REPO / 'bench' / 'results' / 'throughput.json'),
                    help='JSON results file (default bench/results/throughput.json)')
    ap.add_argument('--monitor-path', default=None,
                    help='directory holding a (modified) liquid_edge_ros_monitor package to run '
                         'as the monitor instead of this checkout')
    ap.add_argument('--keep-logs', action='store_true', help="keep the children's logs")
    # Internal: the child roles.
    ap.add_argument('--role', choices=('publisher', 'bare'), help=argparse.SUPPRESS)
    ap.add_argument('--topics', help=argparse.SUPPRESS)
    ap.add_argument('--topic', help=argparse.SUPPRESS)
    ap.add_argument('--mode', choices=BARE_MODES, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.role == 'publisher':
        return role_publisher(args)
    if args.role == 'bare':
        return role_bare(args)
    return bench(args)


if __name__ == '__main__':
    sys.exit(main())
