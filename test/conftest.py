"""Shared test fixtures: the network rule, and real ROS processes started and stopped cleanly.

Every test run keeps DDS discovery on this host (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST) and uses its
own ROS_DOMAIN_ID (run_tests.sh picks one per run; a bare `pytest` picks one here from the pid).
"""
from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, TypeVar

import pytest

REPO = Path(__file__).resolve().parents[1]

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('ROS_DOMAIN_ID', str((os.getpid() % 100) + 1))
os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
os.environ['PYTHONUNBUFFERED'] = '1'

T = TypeVar('T')


@pytest.fixture
def hung_disk(monkeypatch) -> Iterator[threading.Event]:
    """Fault injection (a hung NFS mount cannot be made here): `psutil.disk_usage('/hung')` blocks
    until the event this gives is set (by the test, or when it ends; 60 s at most); other paths
    read '/'."""
    import psutil
    path = '/hung'
    release = threading.Event()
    real = psutil.disk_usage

    def disk_usage(p: str) -> object:
        if p == path:
            release.wait(60)
        return real('/')
    monkeypatch.setattr(psutil, 'disk_usage', disk_usage)
    try:
        yield release
    finally:
        release.set()


def wait_for(predicate: Callable[[], Optional[T]], timeout: float, what: str,
             interval: float = 0.05, last: Optional[Callable[[], Any]] = None) -> T:
    """Poll `predicate` until it returns a truthy value or `timeout` passes, then fail naming
    `what` and, with `last`, what it says of the state at the deadline (the value last seen)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            seen = f'; last: {last()}' if last is not None else ''
            raise AssertionError(f'timed out after {timeout:.1f} s waiting for {what}{seen}')
        time.sleep(interval)


def own_lines(stream_text: str) -> List[str]:
    """The lines a process printed itself, without Fast DDS's own log lines
    (e.g. '2026-11-29 00:33:12.123 [RTPS_TRANSPORT_SHM Error] ...' about stale shared memory)."""
    return [line for line in stream_text.strip().splitlines() if '[RTPS_' not in line]


def node_params(path: Path, node: str) -> Dict[str, Any]:
    """The `/**/<node>: ros__parameters:` section of a params file, as the dotted names the node
    declares (`topic.imu.expected_rate`), the form `parse_config` takes."""
    import yaml
    flat: Dict[str, Any] = {}

    def walk(prefix: str, tree: Dict[str, Any]) -> None:
        for k, v in tree.items():
            if isinstance(v, dict):
                walk(f'{prefix}{k}.', v)
            else:
                flat[prefix + k] = v
    walk('', yaml.safe_load(path.read_text())[f'/**/{node}']['ros__parameters'])
    return flat


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux default 32768)."""
    try:
        return int(Path('/proc/sys/net/ipv4/ip_local_port_range').read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_ports = random.Random(os.getpid() ^ time.time_ns())


def free_ports(count: int = 1) -> int:
    """The first of `count` consecutive TCP ports on 127.0.0.1 that were all free a moment ago
    (for the metrics endpoints and the test servers), below the kernel's ephemeral range.

    Why not `bind(0)`: it returns an ephemeral port, and the kernel later gives the ones around
    it to outgoing connections (on Linux, bind(0) hands out odd ports and connect() even ones,
    so the port after a bind(0) port is exactly the kind a connection takes). The demo test, whose
    node_monitor binds the port after the one it is given, served no IMU rate in its 15 s on both
    distros of one CI run; a taken port would explain it, but its log was not kept, so that is not
    proven. Ports below the range are never taken by a connection; a random base, checked port by
    port, keeps tests apart."""
    high = _ephemeral_low() - count
    for _ in range(500):
        base = _ports.randrange(10000, high)
        socks = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                socks.append(s)
                s.bind(('127.0.0.1', port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError(f'no {count} consecutive free ports in 10000-{high}')


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (`free_ports`)."""
    return free_ports(1)


class RosProcess:
    """A real node in its own process (`python -m module args...`), stopped with SIGINT like Ctrl-C."""

    def __init__(self, module: str, args: List[str], log_path: Path,
                 env: Optional[Dict[str, str]] = None) -> None:
        """`env`: variables set over the test's environment (e.g. another ROS_DOMAIN_ID)."""
        self.log_path = log_path
        self._log = open(log_path, 'wb')
        self.proc = subprocess.Popen([sys.executable, '-m', module, *args], stdout=self._log,
                                     stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                     cwd=REPO)

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors='replace')

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


@pytest.fixture(scope='module')
def ros() -> Iterator[None]:
    """rclpy initialised for the test process's own nodes (listeners, probes), per test module."""
    import rclpy
    rclpy.init()
    yield
    rclpy.try_shutdown()


@pytest.fixture
def ros_process(tmp_path: Path) -> Iterator[Callable[..., RosProcess]]:
    """Start node processes; every one still running is stopped at the end of the test."""
    started: List[RosProcess] = []

    def start(module: str, *args: str) -> RosProcess:
        p = RosProcess(module, list(args), tmp_path / f'{module.rsplit(".", 1)[-1]}-{len(started)}.log')
        started.append(p)
        return p

    yield start
    for p in reversed(started):
        p.stop()
