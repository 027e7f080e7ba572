"""What every benchmark here needs: the CPU's name for its figures, a free loopback port, a
scrape of a node's metrics endpoint, and stopping the processes it started."""
from __future__ import annotations

import platform
import signal
import socket
import subprocess
import urllib.request
from typing import Sequence


def cpu_model() -> str:
    """The CPU model as /proc/cpuinfo names it (figures differ between Intel and AMD machines)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


def free_port() -> int:
    """A loopback port nothing listens on (a dead collector's, or one to bind next)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def scrape(port: int, timeout: float = 10.0) -> str:
    """The page of the metrics endpoint on 127.0.0.1:`port` (OSError while it is down)."""
    with urllib.request.urlopen(f'http://127.0.0.1:{port}/metrics', timeout=timeout) as r:
        return r.read().decode()


def interrupt_all(procs: Sequence[subprocess.Popen], timeout: float = 15.0) -> None:
    """Ctrl-C to each process still running (last started first, as a user stops a stack), then
    SIGKILL whichever has not exited `timeout` s later, so a run never leaves nodes behind."""
    for p in reversed(procs):
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
