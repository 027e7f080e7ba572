"""Energy: counter-wrap arithmetic, the RAPL reader against real powercap-shaped file trees (the
interface is files), this machine's own /sys, and the MAC estimate."""
from __future__ import annotations

import json
import os
import stat
import shutil
import tempfile
from pathlib import Path

import pytest

from liquid_edge_ros_monitor.instrument.energy import (DEFAULT_JOULES_PER_MAC, EnergyMeter, MacEnergyModel, RaplReader,
                                            counter_delta)

MAX = 262_143_328_850  # a typical max_energy_range_uj (2^38 uJ less a little)


def zone(root: Path, dirname: str, name: str, energy_uj: int, max_uj: int = MAX) -> Path:
    d = root / dirname
    d.mkdir(parents=True)
    (d / 'name').write_text(name + '\n')
    (d / 'energy_uj').write_text(f'{energy_uj}\n')
    (d / 'max_energy_range_uj').write_text(f'{max_uj}\n')
    (d / 'enabled').write_text('1\n')
    return d


def set_energy(zone_dir: Path, energy_uj: int) -> None:
    (zone_dir / 'energy_uj').write_text(f'{energy_uj}\n')


def test_counter_delta_with_and_without_wrap() -> None:
    assert counter_delta(100, 250, 1000) == 150
    assert counter_delta(250, 250, 1000) == 0
    assert counter_delta(900, 50, 1000) == 150   # 900 -> 1000 wraps to 0 -> 50
    assert counter_delta(MAX - 5_000_000, 3_000_000, MAX) == 8_000_000


def test_reader_sums_packages_and_ignores_other_zones(tmp_path: Path) -> None:
    (tmp_path / 'intel-rapl').mkdir()  # the control-type directory, not a zone
    p0 = zone(tmp_path, 'intel-rapl:0', 'package-0', 1_000_000)
    p1 = zone(tmp_path, 'intel-rapl:1', 'package-1', 5_000_000)
    core = zone(tmp_path, 'intel-rapl:0:0', 'core', 10)
    psys = zone(tmp_path, 'intel-rapl:2', 'psys', 10)
    mmio = zone(tmp_path, 'intel-rapl-mmio:0', 'package-0', 10)
    reader = RaplReader(str(tmp_path))
    assert reader.available and reader.reason == ''
    assert [d.name for d in reader.domains] == ['package-0', 'package-1']
    assert reader.read_joules() == 0.0
    set_energy(p0, 3_500_000)      # +2.5 J
    set_energy(p1, 5_250_000)      # +0.25 J
    for other in (core, psys, mmio):
        set_energy(other, 999_999_999)
    assert reader.read_joules() == pytest.approx(2.75)
    set_energy(p0, 4_500_000)      # +1 J more
    assert reader.read_joules() == pytest.approx(3.75)


def test_reader_handles_the_counter_wrap(tmp_path: Path) -> None:
    p0 = zone(tmp_path, 'intel-rapl:0', 'package-0', MAX - 2_000_000)
    reader = RaplReader(str(tmp_path))
    set_energy(p0, MAX - 500_000)               # +1.5 J
    assert reader.read_joules() == pytest.approx(1.5)
    set_energy(p0, 700_000)                     # wraps: +0.5 J to the top, +0.7 J after
    assert reader.read_joules() == pytest.approx(2.7)


def test_amd_named_zone_is_read(tmp_path: Path) -> None:
    p = zone(tmp_path, 'amd-rapl:0', 'package-0', 0, max_uj=1000)
    reader = RaplReader(str(tmp_path))
    set_energy(p, 999)
    assert reader.available and reader.read_joules() == pytest.approx(999e-6)


def test_absent_powercap_or_no_package_zone(tmp_path: Path) -> None:
    missing = RaplReader(str(tmp_path / 'nope'))
    assert not missing.available and 'does not exist' in missing.reason
    assert missing.read_joules() is None
    zone(tmp_path, 'intel-rapl:0', 'psys', 0)
    only_psys = RaplReader(str(tmp_path))
    assert not only_psys.available and only_psys.reason.startswith('no RAPL package zone under')


def test_unreadable_counter_gives_a_reason_and_never_raises(tmp_path: Path) -> None:
    p0 = zone(tmp_path, 'intel-rapl:0', 'package-0', 100)
    reader = RaplReader(str(tmp_path))
    assert reader.available
    (p0 / 'energy_uj').unlink()                 # e.g. the driver unloaded
    assert reader.read_joules() is None
    assert not reader.available and 'energy_uj' in reader.reason and '\n' not in reader.reason
    assert reader.read_joules() is None
    (p0 / 'energy_uj').write_text('garbage\n')
    garbage = RaplReader(str(tmp_path))
    assert not garbage.available and garbage.reason.endswith('energy_uj: not an integer')


def read_as_nobody(root: Path) -> list:
    """RaplReader(root) in a forked child that dropped to uid/gid 65534 ('nobody')."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: no pytest machinery from here on, always _exit
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            reader = RaplReader(str(root))
            os.write(w, json.dumps([reader.available, reader.reason, reader.read_joules()]).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, 'rb') as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and data, 'the unprivileged child reported nothing'
    return json.loads(data)


def test_permission_denied_is_the_reason(tmp_path: Path) -> None:
    """energy_uj mode 0400 root, read by an unprivileged user: the post-2020 default on Linux."""
    if os.geteuid() != 0:
        p0 = zone(tmp_path, 'intel-rapl:0', 'package-0', 100)
        os.chmod(p0 / 'energy_uj', 0)
        reason = RaplReader(str(tmp_path)).reason
    else:  # root reads anything: read it as 'nobody' in a child process instead
        root = Path(tempfile.mkdtemp(prefix='powercap-'))
        try:
            os.chmod(root, 0o755)
            p0 = zone(root, 'intel-rapl:0', 'package-0', 100)
            for path in (p0, *p0.iterdir()):
                os.chmod(path, 0o755 if path.is_dir() else 0o444)
            os.chmod(p0 / 'energy_uj', stat.S_IRUSR)
            available, reason, joules = read_as_nobody(root)
            assert available is False and joules is None
        finally:
            shutil.rmtree(root)
    assert reason.startswith('permission denied reading ') and 'energy_uj' in reason


def test_this_machines_sysfs_says_something_consistent() -> None:
    reader = RaplReader()
    if reader.available:
        j1 = reader.read_joules()
        j2 = reader.read_joules()
        assert j1 is not None and j2 is not None and 0.0 <= j1 <= j2
    else:
        assert reader.reason and '\n' not in reader.reason and reader.read_joules() is None
    print('this machine:', 'RAPL available' if reader.available else reader.reason)


def test_mac_model_arithmetic_and_defaults() -> None:
    model = MacEnergyModel(joules_per_mac=2e-12, static_watts=0.5)
    assert model.joules(1_000_000, 2.0) == pytest.approx(2e-6 + 1.0)
    assert model.joules(0, 0.0) == 0.0
    assert model.joules(10, -1.0) == pytest.approx(2e-11)  # a clock step backwards adds nothing
    default = MacEnergyModel()
    assert default.joules_per_mac == DEFAULT_JOULES_PER_MAC == 4.6e-12 and default.static_watts == 0.0
    with pytest.raises(ValueError, match=r"^energy model 'static_watts': must be >= 0, got -1\.0$"):
        MacEnergyModel(1e-12, -1.0)
    with pytest.raises(ValueError, match=r"^energy model 'joules_per_mac': must be >= 0, got nan$"):
        MacEnergyModel(float('nan'), 0.0)


class StepClock:
    """A clock the test advances (time is an input of the estimate, not something to wait for)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_meter_uses_the_estimate_without_rapl(tmp_path: Path) -> None:
    clock = StepClock()
    meter = EnergyMeter(MacEnergyModel(1e-9, 2.0), RaplReader(str(tmp_path / 'none')), clock)
    assert meter.source == 'estimate' and 'does not exist' in meter.reason
    meter.add_macs(1000)
    meter.add_macs(500)
    clock.t += 0.25
    joules, source = meter.read()
    assert source == 'estimate' and joules == pytest.approx(1500e-9 + 0.5)


def test_meter_prefers_rapl_and_falls_back_to_the_estimate(tmp_path: Path) -> None:
    p0 = zone(tmp_path, 'intel-rapl:0', 'package-0', 0)
    clock = StepClock()
    meter = EnergyMeter(MacEnergyModel(1e-6, 0.0), RaplReader(str(tmp_path)), clock)
    assert meter.source == 'rapl' and meter.reason == ''
    meter.add_macs(10**9)                       # ignored while measuring
    set_energy(p0, 4_000_000)
    assert meter.read() == (pytest.approx(4.0), 'rapl')
    (p0 / 'energy_uj').unlink()
    meter.add_macs(1_000_000)                   # 1 J at 1 uJ/MAC
    joules, source = meter.read()
    assert source == 'estimate' and joules == pytest.approx(4.0)  # carries on from the last total
    meter.add_macs(2_000_000)
    assert meter.read() == (pytest.approx(6.0), 'estimate')
    assert 'energy_uj' in meter.reason
