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
    assert level == OK and msg == '100.0 Hz, latency p95 1.0 ms'


def test_rate_below_minimum_warns_then_errors():
    assert evaluate(CFG, LIVE, snap(87.2)) == (WARN, 'rate 87.2 Hz below minimum 95.0 Hz')
    assert evaluate(CFG, LIVE, snap(40.0)) == (ERROR, 'rate 40.0 Hz below minimum 95.0 Hz')
    assert evaluate(CFG, LIVE, snap(120.0)) == (WARN, 'rate 120.0 Hz above maximum 105.0 Hz')


def test_latency_drops_and_several_findings_join():
    level, msg = evaluate(CFG, LIVE, snap(100.0, lag_ms=15.0))
    assert level == WARN and msg == 'latency p95 15.0 ms above maximum 10.0 ms'
    level, msg = evaluate(CFG, LIVE, snap(80.0, lag_ms=25.0, seqs=[1, 2, 5] + list(range(6, 240))))
    assert level == ERROR
    assert msg == ('rate 80.0 Hz below minimum 95.0 Hz; latency p95 25.0 ms above maximum 10.0 ms; '
                   '2 messages dropped in the last 5 s')


def test_stale_and_graph_states():
    s = snap(100.0)
    assert evaluate(CFG, TopicState(publishers=0), s) == (STALE, 'no publishers')
    silent = TopicState(publishers=1, silent_for_s=1.5, subscribed=True)
    assert evaluate(CFG, silent, s) == (STALE, 'no message for 1.5 s (stale timeout 1.0 s)')
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
    assert kv['type'] == 'sensor_msgs/msg/Imu'
    assert all('(' in k for k in kv if k not in ('topic', 'type', 'publishers', 'messages total',
                                                  'messages in window', 'dropped total',
                                                  'dropped in window', 'lost by the monitor total'))


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
    assert evaluate(slow, LIVE, s) == (OK, 'rate unknown (fewer than 2 messages in 5 s)')
    # ...unless the minimum promises at least two messages per window.
    assert evaluate(CFG, LIVE, s) == (ERROR, 'fewer than 2 messages in 5 s, below minimum 95.0 Hz')
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
    assert level == WARN and 'with a negative header.stamp' in msg, msg
    assert 'latency' not in msg and s.header_latency.max < 0.01
    assert dict(key_values(report('/imu', CFG, LIVE, s)))['negative stamps total'] == '30'
