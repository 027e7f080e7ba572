"""Host resources: a psutil sample and its evaluation against thresholds.

`sample_host` does the reading (it can block: a hung network mount stalls `disk_usage`, so the node
runs it on its own thread); `evaluate_host` is pure and turns a `HostSample` into statuses, like
diagnostic_common_diagnostics' cpu, ram and hd monitors in one place. A sensor the host does not have
(temperatures in a VM, a battery on a desktop) is reported as missing, never as an error.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import psutil

from ..core.levels import OK, WARN
from .config import Band, HostConfig


@dataclass(frozen=True)
class DiskReading:
    free: int
    total: int

    @property
    def free_ratio(self) -> float:
        return self.free / self.total if self.total else 0.0


@dataclass(frozen=True)
class HostSample:
    cpu_total: float                          # 0..1 since the previous sample
    cpu_per_core: Tuple[float, ...]
    load: Optional[Tuple[float, float, float]]
    memory_used: int
    memory_total: int
    disks: Dict[str, Union[DiskReading, str]]           # path -> reading, or why it is unreadable
    temperatures: Optional[Dict[str, float]]            # None: the platform cannot report them
    battery: Optional[Tuple[float, Optional[bool]]]     # (charge 0..1, plugged in), None: no battery

    @property
    def memory_ratio(self) -> float:
        return self.memory_used / self.memory_total if self.memory_total else 0.0


@dataclass(frozen=True)
class HostStatus:
    name: str
    level: int
    message: str
    values: List[Tuple[str, str]] = field(default_factory=list)


def prime_cpu() -> None:
    """psutil measures CPU since the previous call; the first call has no reference and says 0."""
    psutil.cpu_percent(None)
    psutil.cpu_percent(None, percpu=True)


def sample_host(disk_paths: Sequence[str]) -> HostSample:
    """Read everything once (blocking; call it off the executor)."""
    per_core = tuple(v / 100.0 for v in psutil.cpu_percent(None, percpu=True))
    total = psutil.cpu_percent(None) / 100.0
    try:
        load: Optional[Tuple[float, float, float]] = tuple(os.getloadavg())  # type: ignore
    except (AttributeError, OSError):
        load = None
    vm = psutil.virtual_memory()
    disks: Dict[str, Union[DiskReading, str]] = {}
    for p in disk_paths:
        try:
            du = psutil.disk_usage(p)
            disks[p] = DiskReading(du.free, du.total)
        except OSError as exc:
            disks[p] = exc.strerror or type(exc).__name__
    temps: Optional[Dict[str, float]] = None
    if hasattr(psutil, 'sensors_temperatures'):
        temps = {}
        try:
            for chip, entries in psutil.sensors_temperatures().items():
                for i, e in enumerate(entries):
                    temps[f'{chip}/{e.label or i}'] = float(e.current)
        except (OSError, RuntimeError):
            temps = None
    battery = None
    if hasattr(psutil, 'sensors_battery'):
        try:
            b = psutil.sensors_battery()
        except (OSError, RuntimeError):
            b = None
        if b is not None:
            battery = (b.percent / 100.0, b.power_plugged)
    return HostSample(total, per_core, load, vm.total - vm.available, vm.total, disks, temps,
                      battery)


def _gib(n: int) -> str:
    return f'{n / 2**30:.2f} GiB'


def _limits(band: Band, fmt: str) -> str:
    parts = []
    if band.warn:
        parts.append(f'WARN {fmt.format(band.warn)}')
    if band.error:
        parts.append(f'ERROR {fmt.format(band.error)}')
    return ', '.join(parts) or 'none'


def evaluate_host(s: HostSample, c: HostConfig) -> List[HostStatus]:
    """Statuses `host cpu`, `host memory`, `host disk <path>`, `host temperature`, `host battery`."""
    out: List[HostStatus] = []
    lvl = c.cpu.level(s.cpu_total)
    msg = f'CPU {s.cpu_total:.0%}' + (' at or above limit' if lvl else '')
    vals = [('usage', f'{s.cpu_total:.3f}'), ('cores', str(len(s.cpu_per_core))),
            ('limits', _limits(c.cpu, '{:.0%}'))]
    vals += [(f'core {i}', f'{v:.3f}') for i, v in enumerate(s.cpu_per_core)]
    if s.load is not None:
        vals.append(('load average 1/5/15 min', ' '.join(f'{x:.2f}' for x in s.load)))
    out.append(HostStatus('host cpu', lvl, msg, vals))

    lvl = c.memory.level(s.memory_ratio)
    out.append(HostStatus(
        'host memory', lvl, f'memory {s.memory_ratio:.0%} used' + (' at or above limit' if lvl else ''),
        [('used', _gib(s.memory_used)), ('total', _gib(s.memory_total)),
         ('usage', f'{s.memory_ratio:.3f}'), ('limits', _limits(c.memory, '{:.0%}'))]))

    for path, d in s.disks.items():
        name = f'host disk {path}'
        if isinstance(d, str):
            # A mount can come back (USB drive, network share): WARN, not a start-up error.
            out.append(HostStatus(name, WARN, f'cannot read {path}: {d}'))
            continue
        lvl = c.disk_free.level(d.free_ratio)
        out.append(HostStatus(
            name, lvl, f'{d.free_ratio:.1%} free' + (' - below limit' if lvl else ''),
            [('free', _gib(d.free)), ('total', _gib(d.total)), ('free ratio', f'{d.free_ratio:.4f}'),
             ('limits (free below)', _limits(c.disk_free, '{:.0%}'))]))

    if not s.temperatures:
        why = 'not supported on this platform' if s.temperatures is None else 'no sensors reported'
        out.append(HostStatus('host temperature', OK, f'no temperature sensors ({why})'))
    else:
        hottest = max(s.temperatures, key=s.temperatures.__getitem__)
        t = s.temperatures[hottest]
        lvl = c.temperature.level(t)
        out.append(HostStatus(
            'host temperature', lvl, f'hottest {hottest} {t:.1f} C' + (' at or above limit' if lvl else ''),
            [(k, f'{v:.1f}') for k, v in sorted(s.temperatures.items())]
            + [('limits', _limits(c.temperature, '{:.0f} C'))]))

    if s.battery is None:
        out.append(HostStatus('host battery', OK, 'no battery'))
    else:
        charge, plugged = s.battery
        lvl = 0 if plugged else c.battery.level(charge)
        state = {True: 'plugged in', False: 'on battery', None: 'power source unknown'}[plugged]
        out.append(HostStatus(
            'host battery', lvl, f'battery {charge:.0%}, {state}' + (' - below limit' if lvl else ''),
            [('charge', f'{charge:.3f}'), ('plugged', str(plugged)),
             ('limits (charge below)', _limits(c.battery, '{:.0%}'))]))
    return out
