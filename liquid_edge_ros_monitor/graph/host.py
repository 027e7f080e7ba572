"""Host resources: psutil readings, sampled part by part, and their evaluation against thresholds.

Any reading can block (a hung network mount stalls `disk_usage`, a sick sensor driver stalls
sysfs), so `HostSampler` reads each part (cpu, memory, temperature, battery, each disk path) on
a thread of its own: one hung part stops only itself. Every part's reading carries its time; a
part not refreshed within `STALE_PERIODS` sampling periods is stale (its values are left out of
the sample, the node shows STALE and exports nothing for it, never the frozen value).
`evaluate_host` is pure and turns a `HostSample` into statuses, like diagnostic_common_diagnostics'
cpu, ram and hd monitors in one place. A sensor the host does not have (temperatures in a VM, a
battery on a desktop) is reported as missing, never as an error.
"""
from __future__ import annotations

import functools
import os
import threading
import time
from dataclasses import dataclass, field
from typing import (Any, Callable, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple,
                    Union)

import psutil

from ..core.levels import STALE, WARN
from ..core.units import percent
from .config import Band, HostConfig

CPU, MEMORY, TEMPERATURE, BATTERY = 'cpu', 'memory', 'temperature', 'battery'
#: A part's reading older than this many sampling periods is stale (one missed sample is jitter).
STALE_PERIODS = 2.0


def disk_part(path: str) -> str:
    return f'disk {path}'


@dataclass(frozen=True)
class DiskReading:
    free: int
    total: int

    @property
    def free_ratio(self) -> float:
        return self.free / self.total if self.total else 0.0


@dataclass(frozen=True)
class HostSample:
    """The latest fresh reading of every part. A part listed in `stale` or `pending` has no fresh
    reading: its fields are None (cpu, memory), or it is absent (a disk), and mean nothing."""
    cpu_total: Optional[float]                # 0..1 since the previous sample
    cpu_per_core: Tuple[float, ...]
    load: Optional[Tuple[float, float, float]]
    memory_used: Optional[int]
    memory_total: Optional[int]
    disks: Dict[str, Union[DiskReading, str]]           # path -> reading, or why it is unreadable
    temperatures: Optional[Dict[str, float]]            # None: the platform cannot report them
    battery: Optional[Tuple[float, Optional[bool]]]     # (charge 0..1, plugged in), None: no battery
    ages: Mapping[str, float] = field(default_factory=dict)    # part -> s since its last reading
    stale: Mapping[str, float] = field(default_factory=dict)   # part -> s without a fresh reading
    pending: FrozenSet[str] = frozenset()     # parts with no reading yet (not stale yet)
    max_age: float = 0.0                      # the age beyond which a part is stale, s
    lost_sensors: FrozenSet[str] = frozenset()  # temperature sensors seen before, gone now

    @property
    def memory_ratio(self) -> float:
        used, total = self.memory_used, self.memory_total
        return used / total if used is not None and total else 0.0

    def fresh(self, part: str) -> bool:
        return part not in self.stale and part not in self.pending


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


CpuReading = Tuple[float, Tuple[float, ...], Optional[Tuple[float, float, float]]]


def read_cpu() -> CpuReading:
    """(total, per core, load average) since this thread's previous call (psutil keeps CPU
    state per thread: prime on the thread that samples)."""
    per_core = tuple(v / 100.0 for v in psutil.cpu_percent(None, percpu=True))
    total = psutil.cpu_percent(None) / 100.0
    try:
        load: Optional[Tuple[float, float, float]] = tuple(os.getloadavg())  # type: ignore
    except (AttributeError, OSError):
        load = None
    return total, per_core, load


def read_memory() -> Tuple[int, int]:
    vm = psutil.virtual_memory()
    return vm.total - vm.available, vm.total


def read_disk(path: str) -> Union[DiskReading, str]:
    try:
        du = psutil.disk_usage(path)
        return DiskReading(du.free, du.total)
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def read_temperatures() -> Optional[Dict[str, float]]:
    if not hasattr(psutil, 'sensors_temperatures'):
        return None
    temps: Dict[str, float] = {}
    try:
        for chip, entries in psutil.sensors_temperatures().items():
            for i, e in enumerate(entries):
                temps[f'{chip}/{e.label or i}'] = float(e.current)
    except (OSError, RuntimeError):
        return None
    return temps


def read_battery() -> Optional[Tuple[float, Optional[bool]]]:
    if not hasattr(psutil, 'sensors_battery'):
        return None
    try:
        b = psutil.sensors_battery()
    except (OSError, RuntimeError):
        return None
    return None if b is None else (b.percent / 100.0, b.power_plugged)


def host_parts(disk_paths: Sequence[str]) -> Dict[str, Callable[[], Any]]:
    """Part name -> its reading function."""
    parts: Dict[str, Callable[[], Any]] = {CPU: read_cpu, MEMORY: read_memory}
    for p in disk_paths:
        parts[disk_part(p)] = functools.partial(read_disk, p)
    parts[TEMPERATURE] = read_temperatures
    parts[BATTERY] = read_battery
    return parts


def sample_host(disk_paths: Sequence[str]) -> HostSample:
    """Read everything once, in turn (blocking; tests and one-off use; the node uses
    `HostSampler`)."""
    now = time.monotonic()
    return assemble({part: (read(), now) for part, read in host_parts(disk_paths).items()},
                    disk_paths, now, max_age=float('inf'), started=now)


def assemble(readings: Mapping[str, Tuple[Any, float]], disk_paths: Sequence[str], now: float,
             max_age: float, started: float,
             sensors_seen: Optional[Mapping[str, float]] = None,
             sensor_forget_after: float = 0.0) -> HostSample:
    """The latest reading of each part (value, monotonic time) as a `HostSample` at `now`. A part
    whose reading is older than `max_age`, or that has none `max_age` after `started`, is stale;
    one with none before that is pending. Neither contributes values. A temperature sensor in
    `sensors_seen` (name -> monotonic time last read) but not in the fresh reading is lost, until
    it has been gone `sensor_forget_after` seconds (0: lost for ever): a board removed for good
    must not hold the status at WARN for the rest of the robot's run."""
    ages: Dict[str, float] = {}
    stale: Dict[str, float] = {}
    pending = set()
    fresh: Dict[str, Any] = {}
    for part in (CPU, MEMORY, *(disk_part(p) for p in disk_paths), TEMPERATURE, BATTERY):
        got = readings.get(part)
        if got is None:
            waited = now - started
            if waited > max_age:
                stale[part] = waited
            else:
                pending.add(part)
            continue
        age = ages[part] = max(0.0, now - got[1])
        if age > max_age:
            stale[part] = age
        else:
            fresh[part] = got[0]
    cpu = fresh.get(CPU)
    mem = fresh.get(MEMORY)
    return HostSample(
        cpu_total=cpu[0] if cpu else None, cpu_per_core=cpu[1] if cpu else (),
        load=cpu[2] if cpu else None,
        memory_used=mem[0] if mem else None, memory_total=mem[1] if mem else None,
        disks={p: fresh[disk_part(p)] for p in disk_paths if disk_part(p) in fresh},
        temperatures=fresh.get(TEMPERATURE), battery=fresh.get(BATTERY),
        ages=ages, stale=stale, pending=frozenset(pending), max_age=max_age,
        lost_sensors=(frozenset(
            name for name, seen in (sensors_seen or {}).items()
            if name not in (fresh.get(TEMPERATURE) or ())
            and not (sensor_forget_after and now - seen >= sensor_forget_after))
            if TEMPERATURE in fresh else frozenset()))


class HostSampler:
    """Reads each host part every `period` on a daemon thread of its own, so a reading that
    blocks (a hung mount) freezes only that part, which then goes stale. The CPU thread primes
    psutil itself: CPU usage is measured per thread, and a prime on another thread leaves the
    first sample at 0 %. A hung thread cannot be interrupted; it stays blocked in its own read and
    is left behind at shutdown (daemon), never duplicated."""

    def __init__(self, disk_paths: Sequence[str], period: float,
                 on_error: Optional[Callable[[str, BaseException], None]] = None,
                 sensor_forget_after: float = 300.0) -> None:
        self.disk_paths = tuple(disk_paths)
        self.period = period
        self.sensor_forget_after = sensor_forget_after
        self.max_age = STALE_PERIODS * period
        self._parts = host_parts(self.disk_paths)
        self._on_error = on_error
        self._readings: Dict[str, Tuple[Any, float]] = {}
        #: temperature sensor -> monotonic time it was last read; replaced whole (atomic), pruned
        #: of sensors gone beyond sensor_forget_after, so it holds at most the sensors of now
        #: and of the last sensor_forget_after seconds.
        self._sensors_seen: Dict[str, float] = {}
        self._stop = threading.Event()
        self._threads: List[threading.Thread] = []
        self.started = time.monotonic()

    def start(self) -> None:
        self.started = time.monotonic()
        for part, read in self._parts.items():
            t = threading.Thread(target=self._loop, args=(part, read), daemon=True,
                                 name=f'host {part}')
            t.start()
            self._threads.append(t)

    def _loop(self, part: str, read: Callable[[], Any]) -> None:
        if part == CPU:
            prime_cpu()         # then the first reading, one period later, is a real one
        elif not self._sample(part, read):
            return
        while not self._stop.wait(self.period):
            if not self._sample(part, read):
                return

    def _sample(self, part: str, read: Callable[[], Any]) -> bool:
        try:
            value = read()
        except Exception as exc:      # noqa: BLE001 - the part goes stale, the others carry on
            if self._on_error is not None:
                self._on_error(part, exc)
            return not self._stop.is_set()
        now = time.monotonic()
        if part == TEMPERATURE:
            forget = self.sensor_forget_after
            seen = {k: t for k, t in self._sensors_seen.items()
                    if not (forget and now - t >= forget)}
            seen.update(dict.fromkeys(value or (), now))
            self._sensors_seen = seen
        self._readings[part] = (value, now)     # one dict store: atomic
        return not self._stop.is_set()

    def snapshot(self, now: Optional[float] = None) -> HostSample:
        return assemble(dict(self._readings), self.disk_paths,
                        time.monotonic() if now is None else now, self.max_age, self.started,
                        self._sensors_seen, self.sensor_forget_after)

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the threads; one blocked in a reading is not waited for beyond `timeout`."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))


def _gib(n: int) -> str:
    return f'{n / 2**30:.2f}'


def _limit_values(band: Band, what: str, fmt: Callable[[float], str]) -> List[Tuple[str, str]]:
    """The thresholds as KeyValues, the unit in the key ('warn at (%)': '90')."""
    where = 'below' if band.below else 'at'
    out = []
    if band.warn:
        out.append((f'warn {where} ({what})', fmt(band.warn)))
    if band.error:
        out.append((f'error {where} ({what})', fmt(band.error)))
    return out


def _pct(ratio: float) -> str:
    return percent(ratio)


_LABELS = {CPU: 'CPU', MEMORY: 'memory', TEMPERATURE: 'temperatures', BATTERY: 'battery'}


def _stale_status(part: str, s: HostSample) -> HostStatus:
    age = s.stale[part]
    label = _LABELS.get(part, part)
    last = s.ages.get(part)
    return HostStatus(f'host {part}', STALE,
                      f'{label} not sampled for {age:.1f} s (limit {s.max_age:g} s)',
                      [('sample age (s)', f'{age:.1f}' if last is not None else 'never sampled')])


def absent_hardware(s: HostSample) -> List[str]:
    """What this host does not have (read fresh, found none): said once, on `host cpu`, instead
    of an OK status each ('no battery', 'no temperature sensors' on every VM)."""
    out = []
    if s.fresh(TEMPERATURE) and not s.temperatures and not s.lost_sensors:
        out.append('temperature sensors' if s.temperatures is not None
                   else 'temperature sensors (not supported)')
    if s.fresh(BATTERY) and s.battery is None:
        out.append('battery')
    return out


def evaluate_host(s: HostSample, c: HostConfig,
                  held: Optional[Dict[str, int]] = None) -> List[HostStatus]:
    """Statuses `host cpu`, `host memory`, `host disk <path>`, `host temperature`, `host battery`:
    STALE for a part without a fresh reading, none yet for a pending one, and none for hardware
    the host does not have (`absent_hardware`, named on `host cpu`)."""
    memory: Dict[str, int] = held if held is not None else {}

    def level(part: str, band: Band, value: float) -> int:
        """The band's level of a reading, with hysteresis against the level it held (`held`:
        part -> level, updated here; None: no memory)."""
        lvl = band.level(value, memory.get(part, 0), c.hysteresis)
        memory[part] = lvl
        return lvl

    out: List[HostStatus] = []
    for part in list(s.stale):
        memory.pop(part, None)
        out.append(_stale_status(part, s))
    # A fresh part has its reading (HostSample): the checks say so to the type checker too.
    if s.fresh(CPU) and s.cpu_total is not None:
        out.append(_cpu_status(s, s.cpu_total, c, level))
    if s.fresh(MEMORY) and s.memory_used is not None and s.memory_total is not None:
        out.append(_memory_status(s, s.memory_used, s.memory_total, c, level))
    for path, d in s.disks.items():
        out.append(_disk_status(path, d, c, level))
    if s.fresh(TEMPERATURE) and (s.temperatures or s.lost_sensors):
        out.append(_temperature_status(s, c, level))
    if s.fresh(BATTERY) and s.battery is not None:
        out.append(_battery_status(s, c, level))
    return out


Level = Callable[[str, Band, float], int]


def _plain(_part: str, band: Band, value: float) -> int:
    return band.level(value)


def _cpu_status(s: HostSample, cpu: float, c: HostConfig, level: Level = _plain) -> HostStatus:
    lvl = level(CPU, c.cpu, cpu)
    limit = c.cpu.error if lvl == 2 else c.cpu.warn
    msg = f'CPU {cpu:.0%}' + (f' at or above {limit:.0%} limit' if lvl and cpu >= limit
                              else f' (clears under {limit * (1 - c.hysteresis):.1%})'
                              if lvl else '')
    vals = [('usage (%)', _pct(cpu)), ('cores', str(len(s.cpu_per_core)))]
    vals += _limit_values(c.cpu, '%', _pct)
    vals += [(f'core {i} (%)', _pct(v)) for i, v in enumerate(s.cpu_per_core)]
    if s.load is not None:
        vals.append(('load average (1/5/15 min)', ' '.join(f'{x:.2f}' for x in s.load)))
    absent = absent_hardware(s)
    if absent:
        vals.append(('not present', ', '.join(absent)))
    return HostStatus('host cpu', lvl, msg, vals + _age(s, CPU))


def _age(s: HostSample, part: str) -> List[Tuple[str, str]]:
    age = s.ages.get(part)
    return [] if age is None else [('sample age (s)', f'{age:.1f}')]


def _memory_status(s: HostSample, used: int, total: int, c: HostConfig,
                   level: Level = _plain) -> HostStatus:
    lvl = level(MEMORY, c.memory, s.memory_ratio)
    limit = c.memory.error if lvl == 2 else c.memory.warn
    return HostStatus(
        'host memory', lvl,
        f'memory {s.memory_ratio:.0%} used' + (f' at or above {limit:.0%} limit' if lvl else ''),
        [('used (GiB)', _gib(used)), ('total (GiB)', _gib(total)),
         ('usage (%)', _pct(s.memory_ratio))] + _limit_values(c.memory, '%', _pct)
        + _age(s, MEMORY))


def _disk_status(path: str, d: Union[DiskReading, str], c: HostConfig,
                 level: Level = _plain) -> HostStatus:
    name = f'host disk {path}'
    if isinstance(d, str):
        # A mount can come back (USB drive, network share): WARN, not a start-up error.
        return HostStatus(name, WARN, f'cannot read {path}: {d}')
    lvl = level(disk_part(path), c.disk_free, d.free_ratio)
    limit = c.disk_free.error if lvl == 2 else c.disk_free.warn
    return HostStatus(
        name, lvl, f'{d.free_ratio:.1%} free' + (f', below {limit:.0%} limit' if lvl else ''),
        [('free (GiB)', _gib(d.free)), ('total (GiB)', _gib(d.total)),
         ('free (%)', percent(d.free_ratio, 2))] + _limit_values(c.disk_free, '% free', _pct))


def _temperature_status(s: HostSample, c: HostConfig, level: Level = _plain) -> HostStatus:
    """The hottest sensor against the limits and, beside it, the sensors lost (WARN): the worst
    level wins, so a lost sensor never masks an over-temperature ERROR of the others."""
    values = [(f'{k} (C)', f'{v:.1f}') for k, v in sorted((s.temperatures or {}).items())]
    findings: List[Tuple[int, str]] = []
    if s.temperatures:
        hottest = max(s.temperatures, key=s.temperatures.__getitem__)
        t = s.temperatures[hottest]
        lvl = level(TEMPERATURE, c.temperature, t)
        limit = c.temperature.error if lvl == 2 else c.temperature.warn
        findings.append((lvl, f'hottest {hottest} {t:.1f} C' + (f' at or above {limit:.0f} C limit'
                                                               if lvl else '')))
        values += _limit_values(c.temperature, 'C', lambda v: f'{v:.0f}')
    if s.lost_sensors:
        # A sensor that reported before and is gone now (a driver crashed, a board came loose)
        # is not the same as a host that never had one.
        lost = ', '.join(sorted(s.lost_sensors))
        findings.append((WARN, f'sensor lost: {lost}'))
        values.append(('lost sensors', lost))
    findings.sort(key=lambda f: -f[0])      # the worst first (stable: hottest before lost)
    return HostStatus('host temperature', findings[0][0], '; '.join(m for _, m in findings),
                      values)


def _battery_status(s: HostSample, c: HostConfig, level: Level = _plain) -> HostStatus:
    assert s.battery is not None
    charge, plugged = s.battery
    lvl = 0 if plugged else level(BATTERY, c.battery, charge)
    limit = c.battery.error if lvl == 2 else c.battery.warn
    state = {True: 'plugged in', False: 'on battery', None: 'power source unknown'}[plugged]
    return HostStatus(
        'host battery', lvl,
        f'battery {charge:.0%}' + (f' below {limit:.0%} limit' if lvl else '') + f', {state}',
        [('charge (%)', _pct(charge)), ('plugged', str(plugged))]
        + _limit_values(c.battery, '%', _pct))
