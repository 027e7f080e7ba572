"""Energy for the inference node: a measured counter where the machine gives one (Linux powercap /
RAPL), else an estimate from MAC counts, always labelled with its source (no ROS imports).

RAPL through powercap: each package zone (`/sys/class/powercap/intel-rapl:N`, name `package-N`;
AMD Zen CPUs appear under the same `intel-rapl` driver, some kernels/BSPs name it `amd-rapl`)
has `energy_uj`, a cumulative counter in microjoules that wraps at `max_energy_range_uj`. The
counter is the whole package's energy, not the inference's alone. Since Linux 5.10 (CVE-2020-8694,
"Platypus") `energy_uj` is readable by root only, so a node running as a normal user usually gets
the estimate, with the reason saying why. Read at least once per wrap period (max_energy_range_uj /
package power: about 40 min at 100 W for the common 2^38 uJ range), which any report period meets.
"""
from __future__ import annotations

import errno
import os
import re
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

# Top-level (package) zones: intel-rapl:0, intel-rapl-mmio:0, amd-rapl:0 (subzones have two indices).
_ZONE = re.compile(r'(intel-rapl|intel-rapl-mmio|amd-rapl):\d+\Z')

# Default estimate constants. An ESTIMATE, not a measurement.
# 4.6 pJ per MAC: a 32-bit float multiply (3.7 pJ) plus add (0.9 pJ) at 45 nm, M. Horowitz,
# "Computing's energy problem (and what we can do about it)", ISSCC 2014. It counts the arithmetic
# only: on a CPU, instruction issue, register and cache traffic cost 10-100x more, so this is a
# lower bound of the dynamic energy of the network's arithmetic, useful to compare models, not to
# size a battery.
DEFAULT_JOULES_PER_MAC = 4.6e-12
# 0 W: the estimate charges no idle/static power unless the caller states the device's figure
# (e.g. from its datasheet); any default would pretend to know the board.
DEFAULT_STATIC_WATTS = 0.0


def counter_delta(previous: int, current: int, max_range: int) -> int:
    """Increase of a counter that wraps to 0 after `max_range` (powercap's max_energy_range_uj)."""
    if current >= previous:
        return current - previous
    return max_range - previous + current


def _read_int(path: str) -> int:
    with open(path, 'rb') as f:
        return int(f.read().strip())


def _why(path: str, exc: Exception) -> str:
    if isinstance(exc, PermissionError) or getattr(exc, 'errno', None) in (errno.EACCES, errno.EPERM):
        return (f'permission denied reading {path} (root-only since Linux 5.10, CVE-2020-8694; '
                f'run as root or grant read access to use RAPL)')
    if isinstance(exc, ValueError):
        return f'{path}: not an integer'
    return f'cannot read {path}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}'


@dataclass
class RaplDomain:
    """One package zone: where its counter is and what was last read from it."""

    name: str
    path: str
    max_range_uj: int
    last_uj: int


class RaplReader:
    """Package energy from powercap. `available` False with `reason` when there is no RAPL or it
    can't be read; `read_joules()` never raises (None when unavailable)."""

    def __init__(self, root: str = '/sys/class/powercap') -> None:
        self.root = root
        self.domains: List[RaplDomain] = []
        self.reason = ''
        self._total_uj = 0
        try:
            self._discover()
        except Exception as exc:  # noqa: BLE001 - a broken sysfs must not stop the node
            self.domains, self.reason = [], f'cannot scan {root}: {exc}'

    @property
    def available(self) -> bool:
        return bool(self.domains) and not self.reason

    def _discover(self) -> None:
        if not os.path.isdir(self.root):
            self.reason = f'{self.root} does not exist (no powercap: not Linux, or no RAPL driver loaded)'
            return
        # MSR zones first, so a package the MMIO interface repeats is read from the MSR one.
        zones = sorted((d for d in os.listdir(self.root) if _ZONE.match(d)), key=lambda d: ('mmio' in d, d))
        found: Dict[str, RaplDomain] = {}
        for zone in zones:
            path = os.path.join(self.root, zone)
            try:
                with open(os.path.join(path, 'name')) as f:
                    name = f.read().strip()
            except OSError as exc:
                self.reason = _why(os.path.join(path, 'name'), exc)
                return
            if not name.startswith('package'):
                continue  # psys (platform) would double-count the packages
            if name in found:
                continue  # the MMIO interface repeats a package the MSR one already gives
            values = []
            for leaf in ('max_energy_range_uj', 'energy_uj'):
                try:
                    values.append(_read_int(os.path.join(path, leaf)))
                except (OSError, ValueError) as exc:
                    self.reason = _why(os.path.join(path, leaf), exc)
                    return
            max_range, now = values
            found[name] = RaplDomain(name, os.path.join(path, 'energy_uj'), max_range, now)
        self.domains = list(found.values())
        if not self.domains:
            self.reason = f'no RAPL package zone under {self.root}'

    def read_joules(self) -> Optional[float]:
        """Package energy since this reader was created, in joules (summed over packages, counter
        wraps handled). None, with `reason` set, once a counter can't be read."""
        if not self.available:
            return None
        for d in self.domains:
            try:
                now = _read_int(d.path)
            except (OSError, ValueError) as exc:
                self.reason = _why(d.path, exc)
                return None
            self._total_uj += counter_delta(d.last_uj, now, d.max_range_uj)
            d.last_uj = now
        return self._total_uj / 1e6


@dataclass(frozen=True)
class MacEnergyModel:
    """Estimated energy = joules_per_mac x MACs + static_watts x elapsed seconds (see the module
    constants for where the defaults come from)."""

    joules_per_mac: float = DEFAULT_JOULES_PER_MAC
    static_watts: float = DEFAULT_STATIC_WATTS

    def __post_init__(self) -> None:
        for name in ('joules_per_mac', 'static_watts'):
            value = getattr(self, name)
            if not value >= 0:  # also NaN
                raise ValueError(f"energy model '{name}': must be >= 0, got {value}")

    def joules(self, macs: int, elapsed_s: float) -> float:
        return macs * self.joules_per_mac + max(0.0, elapsed_s) * self.static_watts


class EnergyMeter:
    """Total energy since start, with its source: 'rapl' (measured, whole package) when RAPL is
    readable, else 'estimate' (MAC model). `add_macs` is the hot path (one integer add; call it from
    one thread); `read` is for the report period. If RAPL stops being readable the meter carries on
    from its last total with the estimate, and says 'estimate' from then on."""

    def __init__(self, model: Optional[MacEnergyModel] = None, rapl: Optional[RaplReader] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.model = model or MacEnergyModel()
        self.rapl = RaplReader() if rapl is None else rapl
        self._clock = clock
        self._macs = 0
        self._use_rapl = self.rapl.available
        self._base_j = 0.0           # energy carried over when RAPL failed
        self._base_macs = 0
        self._base_t = clock()
        self._last_j = 0.0

    @property
    def source(self) -> str:
        return 'rapl' if self._use_rapl else 'estimate'

    @property
    def reason(self) -> str:
        """Why RAPL isn't used ('' while it is)."""
        return '' if self._use_rapl else self.rapl.reason

    @property
    def macs(self) -> int:
        return self._macs

    def add_macs(self, macs: int) -> None:
        self._macs += macs

    def read(self) -> Tuple[float, str]:
        """(joules since start, source)."""
        if self._use_rapl:
            j = self.rapl.read_joules()
            if j is not None:
                self._last_j = j
                return j, 'rapl'
            self._use_rapl = False
            self._base_j, self._base_macs, self._base_t = self._last_j, self._macs, self._clock()
        j = self._base_j + self.model.joules(self._macs - self._base_macs, self._clock() - self._base_t)
        self._last_j = j
        return j, 'estimate'
