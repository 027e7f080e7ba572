"""What every benchmark here needs: the CPU's name for its figures, a free loopback port, and a
scrape of a node's metrics endpoint."""
from __future__ import annotations

import platform
import socket
import urllib.request


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
