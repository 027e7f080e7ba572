"""Levels and messages from statistics (no DDS)."""
import pytest

from liquid_edge_ros_monitor.topics.config import TopicConfig
from liquid_edge_ros_monitor.topics.health import (ERROR, OK, STALE, WARN, TopicState, evaluate,
                                            key_values, report)
from liquid_edge_ros_monitor.topics.stats import NS, TopicWindow

MS = 1_000_000
CFG = TopicConfig(name='/imu', min_rate=95.0, max_rate=105.0, max_latency=0.010, stale_timeout=1.0)
LIVE = TopicState(type_name='sensor_msgs/msg/Imu', publishers=1, silent_for_s=0.0, subscribed=True,
                  has_header=True)


def snap(rate: float, lag_ms: float = 1.0, seqs=None):
    w = TopicWindow(5.0, 100_000, has_header=True)
    period = NS / rate
    seqs = seqs or range(1, int(rate * 3) + 1)
    t = 0
    for i, seq in enumerate(seqs):
        t = 10 * NS + int(i * period)
        w.record(t, 100, 10_000, seq, t - int(lag_ms * MS))
    return w.snapshot(t, single_publisher=True)


def test_healthy_topic_is_ok_with_its_rate():
    level, msg = evaluate(CFG, LIVE, snap(100.0))
    assert level == OK and msg == '100.0 Hz, 10.0 kB/s, latency p95 1.0 ms'


def test_rate_below_minimum_warns_then_errors():
    assert evaluate(CFG, LIVE, snap(87.2)) == (WARN, 'rate 87.2 Hz below 95 Hz min')
    assert evaluate(CFG, LIVE, snap(40.0)) == (ERROR, 'rate 40.0 Hz below half of 95 Hz min')
    assert evaluate(CFG, LIVE, snap(120.0)) == (WARN, 'rate 120.0 Hz above 105 Hz max')


def test_latency_drops_and_several_findings_join():
    level, msg = evaluate(CFG, LIVE, snap(100.0, lag_ms=15.0))
    assert level == WARN and msg == 'latency p95 15.0 ms above 10.0 ms max'
    # The worst finding leads (it says why the level); what does not fit in 60 characters is
    # counted, not cut mid-word.
    level, msg = evaluate(CFG, LIVE, snap(80.0, lag_ms=25.0,
                                          seqs=[1, 2] + list(range(9, 240))))
    assert level == ERROR
    assert msg == 'latency p95 25.0 ms above twice 10.0 ms max (+2 more)', msg
    assert len(msg) <= 64


def test_stale_and_graph_states():
    s = snap(100.0)
    assert evaluate(CFG, TopicState(publishers=0), s) == (STALE, 'no publishers')
    silent = TopicState(publishers=1, silent_for_s=1.5, subscribed=True)
    assert evaluate(CFG, silent, s) == (STALE, 'no message for 1.5 s (timeout 1 s)')
    no_timeout = TopicConfig(name='/x')
    assert evaluate(no_timeout, silent, s)[0] == OK
    problem = TopicState(publishers=1, problem="type 'a/msg/B' cannot be imported")
    assert evaluate(CFG, problem, None) == (WARN, "type 'a/msg/B' cannot be imported")
    assert evaluate(CFG, TopicState(publishers=1, silent_for_s=0.2), None) == \
        (OK, 'waiting for the first message')


def test_key_values_carry_units_in_keys():
    kv = dict(key_values(report('/imu', CFG, LIVE, snap(100.0))))
    assert kv['rate (Hz)'] == '100.000'
    assert kv['min rate (Hz)'] == '95'
    assert kv['latency p50 (ms)'] == '1.000'
    assert 'transport latency p95 (ms)' in kv
    assert kv['dropped total'] == '0'
    assert kv['drop ratio in window (%)'] == '0.00'
    assert kv['type'] == 'sensor_msgs/msg/Imu'
    assert all('(' in k for k in kv if k not in ('topic', 'type', 'publishers', 'messages total',
                                                  'messages in window', 'dropped total',
                                                  'dropped in window', 'lost by the monitor total'))
    assert kv['bandwidth (B/s)'] == '10000'      # the raw figure; the message says 10.0 kB/s


@pytest.mark.parametrize('lvl', [OK, WARN, ERROR, STALE])
def test_levels_are_diagnostic_msgs_values(lvl):
    from diagnostic_msgs.msg import DiagnosticStatus
    names = {OK: DiagnosticStatus.OK, WARN: DiagnosticStatus.WARN, ERROR: DiagnosticStatus.ERROR,
             STALE: DiagnosticStatus.STALE}
    assert names[lvl][0] == lvl


def test_slow_topics_are_not_zero_hz():
    """One message in the window says nothing about the rate (ros/diagnostics #45)."""
    w = TopicWindow(5.0, 100, has_header=False)
    w.record(10 * NS, 10, 0, 1)
    s = w.snapshot(11 * NS, single_publisher=True)
    slow = TopicConfig(name='/slow', min_rate=0.1, stale_timeout=20.0)
    assert evaluate(slow, LIVE, s) == (OK, 'rate unknown (under 2 messages in 5 s), 0 B/s')
    # ...unless the minimum promises at least two messages per window.
    assert evaluate(CFG, LIVE, s) == (ERROR, 'under 2 messages in 5 s (95 Hz min)')
    assert dict(key_values(report('/slow', slow, LIVE, s)))['rate (Hz)'] == 'unknown'


def test_negative_stamps_warn_and_stay_out_of_latency():
    w = TopicWindow(5.0, 100_000, has_header=True)
    period = NS // 100
    t = 0
    for i in range(300):
        t = 10 * NS + i * period
        w.record(t, 100, 10_000, i + 1, -NS if i % 10 == 0 else t - MS)
    s = w.snapshot(t, single_publisher=True)
    level, msg = evaluate(CFG, LIVE, s)
    assert level == WARN and msg == '30 negative header stamps in 5 s', msg
    assert 'latency' not in msg and s.header_latency.max < 0.01
    assert dict(key_values(report('/imu', CFG, LIVE, s)))['negative stamps total'] == '30'


# ---- calm statuses: drop ratio and hysteresis (issue 18 item 2) ------------------------------------

def _boundary(base, values, field):
    """Snapshots of `base` with `field` set to each value in turn (a signal fed to evaluate)."""
    import dataclasses
    return [dataclasses.replace(base, **{field: v}) for v in values]


def _level_changes(cfg, snaps, held):
    levels = [evaluate(cfg, LIVE, s, held)[0] for s in snaps]
    return sum(1 for a, b in zip(levels, levels[1:]) if a != b), levels


def test_a_rate_hovering_at_its_minimum_changes_level_once_not_at_every_crossing():
    """The IMU at 200 Hz +-5 % (min 190 Hz) on a loaded machine reads 189.x, 190.x, 189.x, ...
    With a 3 % hysteresis it enters WARN once and stays until the rate is back above 195.7 Hz;
    without memory (each evaluation on its own, as before) every crossing flipped the status."""
    imu = TopicConfig(name='/imu', min_rate=190.0, max_rate=210.0, stale_timeout=1.0)
    base = snap(200.0)
    hover = [191.0, 189.5, 190.4, 189.8, 190.9, 189.2, 190.2, 189.9] * 5    # 40 evaluations
    changes, levels = _level_changes(imu, _boundary(base, hover, 'rate_hz'), {})
    assert changes == 1 and levels[0] == OK and set(levels[1:]) == {WARN}, levels
    _, msg = evaluate(imu, LIVE, _boundary(base, [190.4], 'rate_hz')[0], {'rate_low': WARN})
    assert msg == 'rate 190.4 Hz: clears at 195.7 Hz (190 Hz min)'
    # Back above the limit by the margin: OK, once.
    held = {}
    changes, levels = _level_changes(imu, _boundary(base, hover + [196.0] * 5, 'rate_hz'), held)
    assert changes == 2 and levels[-1] == OK, levels
    # Memoryless (held=None): the old behaviour, a change at every crossing.
    flips = [evaluate(imu, LIVE, s)[0] for s in _boundary(base, hover, 'rate_hz')]
    assert sum(1 for a, b in zip(flips, flips[1:]) if a != b) == len(hover) - 1


def test_error_levels_have_the_same_hysteresis():
    imu = TopicConfig(name='/imu', min_rate=190.0, stale_timeout=1.0)
    base = snap(200.0)
    signal = [94.0, 96.0, 94.5, 96.5, 95.5, 98.0, 120.0, 200.0]
    levels = [evaluate(imu, LIVE, s, held)[0] for held in [{}]
              for s in _boundary(base, signal, 'rate_hz')]
    # Enters ERROR under 95 Hz, keeps it up to 97.85 Hz (95 + 3 %), then WARN, then OK.
    assert levels == [ERROR, ERROR, ERROR, ERROR, ERROR, WARN, WARN, OK], levels


def test_latency_hovering_at_its_limit_enters_warn_once():
    base = snap(100.0, lag_ms=1.0)
    lat = base.header_latency
    import dataclasses
    p95s = [0.0095] + [0.0101, 0.0099, 0.0100, 0.0098, 0.0102, 0.0099] * 5
    snaps = [dataclasses.replace(base, header_latency=dataclasses.replace(lat, p95=v))
             for v in p95s]
    changes, levels = _level_changes(CFG, snaps, {})
    assert changes == 1 and levels[0] == OK and levels[1] == WARN, levels
    snaps.append(dataclasses.replace(base, header_latency=dataclasses.replace(lat, p95=0.0096)))
    changes, levels = _level_changes(CFG, snaps, {})
    assert changes == 2 and levels[-1] == OK


def test_drops_warn_by_ratio_of_the_window_not_on_the_first_lost_datagram():
    """A best-effort IMU losing 1-5 of its 1,000 messages a window (0.1-0.5 %) stays OK: it used to
    go WARN '1 message dropped in the last 5 s' and back at every loss. Above 1 % it is WARN,
    with the share, the count and the window in the message."""
    imu = TopicConfig(name='/imu', min_rate=190.0, stale_timeout=1.0)
    base = dataclasses_replace(snap(200.0), window_messages=1000)
    losses = [0, 1, 0, 3, 5, 2, 1, 0, 4, 1] * 3
    changes, levels = _level_changes(imu, _boundary(base, losses, 'dropped_window'), {})
    assert changes == 0 and set(levels) == {OK}, levels
    level, msg = evaluate(imu, LIVE, dataclasses_replace(base, dropped_window=25), {})
    assert (level, msg) == (WARN, 'drops 2.4% above 1.0% max: 25 of 1025 in 5 s')
    # A slow topic: one lost message of 25 is 4 %, but a single loss never warns; two do.
    slow = dataclasses_replace(base, window_messages=25)
    assert evaluate(imu, LIVE, dataclasses_replace(slow, dropped_window=1), {})[0] == OK
    assert evaluate(imu, LIVE, dataclasses_replace(slow, dropped_window=2), {})[0] == WARN
    # Hovering at 1 %: one change in, none back and forth; drops clear under half the ratio.
    hover = [8, 11, 9, 10, 10, 9, 11, 6, 10, 9] * 4
    changes, levels = _level_changes(imu, _boundary(base, hover, 'dropped_window'), {})
    assert changes == 1 and levels[0] == OK and set(levels[1:]) == {WARN}, levels
    level, msg = evaluate(imu, LIVE, dataclasses_replace(base, dropped_window=6), {'drops': WARN})
    assert (level, msg) == (WARN, 'drops 0.6%: clears at 0.5% (6 of 1006 in 5 s)')
    assert evaluate(imu, LIVE, dataclasses_replace(base, dropped_window=4), {'drops': WARN})[0] \
        == OK
    zero = TopicConfig(name='/imu', min_rate=190.0, stale_timeout=1.0, drop_warn_ratio=0.0)
    assert evaluate(zero, LIVE, dataclasses_replace(base, dropped_window=500), {})[0] == OK


def dataclasses_replace(obj, **changes):
    import dataclasses
    return dataclasses.replace(obj, **changes)


def test_no_hysteresis_configured_flips_at_the_limit():
    """hysteresis 0 is the plain threshold (configurable)."""
    plain = TopicConfig(name='/imu', min_rate=190.0, stale_timeout=1.0, hysteresis=0.0)
    changes, _ = _level_changes(plain, _boundary(snap(200.0), [189.0, 191.0] * 3, 'rate_hz'), {})
    assert changes == 5
