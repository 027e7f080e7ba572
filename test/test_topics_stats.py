"""Window statistics on synthetic arrival streams (no DDS): rate, jitter, latency, drops, bounds."""
import numpy as np
import pytest

from liquid_edge_ros_monitor.topics.stats import MISSING, NS, SEQ_RESET, TopicWindow

MS = 1_000_000


def feed(w: TopicWindow, t0: int, rate: float, n: int, lag_ns: int = 0, size: int = 100,
         seq0: int = 1, transport_ns: int = 50_000):
    period = NS / rate
    for i in range(n):
        t = t0 + int(i * period)
        w.record(t, size, transport_ns, seq0 + i, t - lag_ns)
    return t0 + int((n - 1) * period)


def test_rate_jitter_bandwidth_of_a_periodic_stream():
    w = TopicWindow(5.0, 100_000, has_header=True)
    last = feed(w, 10 * NS, 1000.0, 3000)
    s = w.snapshot(last + MS // 2, single_publisher=True)
    assert s.rate_hz == pytest.approx(1000.0, rel=1e-6)
    assert s.jitter_s < 1e-6
    assert s.max_gap_s == pytest.approx(0.001, abs=1e-6)
    assert s.bandwidth_bps == pytest.approx(100_000, rel=1e-6)
    assert s.messages_total == 3000 and s.window_messages == 3000
    assert s.dropped_total == 0


def test_header_latency_quantiles_and_histogram_feed():
    w = TopicWindow(5.0, 100_000, has_header=True)
    last = feed(w, 10 * NS, 100.0, 200, lag_ns=20 * MS)
    s = w.snapshot(last, single_publisher=True)
    assert s.header_latency.p50 == pytest.approx(0.020)
    assert s.header_latency.max == pytest.approx(0.020)
    assert s.transport_latency.p95 == pytest.approx(50e-6)
    assert s.new_header_latency_s.size == 200
    # The next snapshot carries only what arrived since.
    last = feed(w, last + 10 * MS, 100.0, 10, lag_ns=5 * MS)
    s2 = w.snapshot(last, single_publisher=True)
    assert s2.new_header_latency_s.size == 10
    assert np.allclose(s2.new_header_latency_s, 0.005)


def test_window_slides_and_rate_decays_when_the_topic_stops():
    w = TopicWindow(2.0, 100_000, has_header=False)
    last = feed(w, 0, 100.0, 500)                  # 5 s of data, window is 2 s
    s = w.snapshot(last, single_publisher=True)
    assert s.window_messages == pytest.approx(201, abs=1)
    assert s.rate_hz == pytest.approx(100.0, rel=1e-3)
    s = w.snapshot(last + 1 * NS, single_publisher=True)   # silent for 1 s
    assert 40 < s.rate_hz < 60
    assert s.age_s == pytest.approx(1.0)
    s = w.snapshot(last + 3 * NS, single_publisher=True)   # everything aged out
    # Fewer than two messages say nothing about a rate: unknown, not 0 Hz.
    assert s.window_messages == 0 and s.rate_hz is None and s.bandwidth_bps == 0.0
    assert s.age_s == pytest.approx(3.0)
    assert s.messages_total == 500


def test_capacity_bounds_memory_but_rate_stays_true():
    w = TopicWindow(5.0, 1000, has_header=False)
    last = feed(w, 0, 1000.0, 5000)
    s = w.snapshot(last, single_publisher=True)
    assert s.window_messages == 1000
    assert s.rate_hz == pytest.approx(1000.0, rel=1e-6)
    assert s.overflowed


def test_sequence_gaps_are_drops_only_with_one_publisher():
    w = TopicWindow(5.0, 10_000, has_header=False)
    for i, seq in enumerate([1, 2, 3, 6, 7, 10]):
        w.record(i * MS, 10, 0, seq)
    s = w.snapshot(10 * MS, single_publisher=True)
    assert s.dropped_total == 4 and s.dropped_window == 4
    # Across snapshots the boundary is checked too.
    w.record(11 * MS, 10, 0, 12)
    assert w.snapshot(12 * MS, single_publisher=True).dropped_total == 5
    # A publisher restart (sequence starts again) is not a drop.
    w.record(13 * MS, 10, 0, 1)
    w.record(14 * MS, 10, 0, 2)
    assert w.snapshot(15 * MS, single_publisher=True).dropped_total == 5
    # With several publishers, sequences interleave: nothing is counted.
    for i, seq in enumerate([3, 100, 4, 101]):
        w.record((16 + i) * MS, 10, 0, seq)
    s = w.snapshot(20 * MS, single_publisher=False)
    assert s.dropped_total == 5 and not s.drops_measurable
    # Drops leave the window once it slides past them.
    assert w.snapshot(20 * NS, single_publisher=True).dropped_window == 0


def test_zero_future_and_unreadable_stamps_are_counted_not_measured():
    w = TopicWindow(5.0, 100, has_header=True)
    now = 100 * NS
    w.record(now, 10, 0, 1, now - 1 * MS)
    w.record(now + 1, 10, 0, 2, 0)
    w.record(now + 2, 10, 0, 3, now + 50 * MS)
    w.record(now + 3, 10, 0, 4, MISSING)
    s = w.snapshot(now + 10, single_publisher=True)
    assert (s.zero_stamps_window, s.future_stamps_window) == (1, 1)
    assert (s.zero_stamps_total, s.future_stamps_total, s.unreadable_stamps_total) == (1, 1, 1)
    assert s.header_latency.count == 1
    assert s.header_latency.p50 == pytest.approx(0.001)


@pytest.mark.parametrize('sec', [-1, -2 ** 31])
def test_negative_stamps_are_invalid_and_never_measured(sec):
    """A stamp before 1970 (sec = -1, sec = -2^31) used to measure as ~10^11 s of latency, keep
    the topic OK and poison the histogram's _sum for the life of the process."""
    w = TopicWindow(5.0, 100, has_header=True)
    now = 100 * NS
    w.record(now, 10, 0, 1, now - 1 * MS)
    w.record(now + 1, 10, 0, 2, sec * NS + 5)
    s = w.snapshot(now + 10, single_publisher=True)
    assert (s.negative_stamps_window, s.negative_stamps_total) == (1, 1)
    assert s.header_latency.count == 1 and s.header_latency.max < 1.0
    assert s.new_header_latency_s.max() < 1.0 and s.new_header_latency_s.size == 1
    assert (s.zero_stamps_total, s.future_stamps_total, s.unreadable_stamps_total) == (0, 0, 0)


def test_missing_transport_timestamps_are_skipped():
    w = TopicWindow(5.0, 100, has_header=False)
    w.record(1, 10, MISSING, 1)
    w.record(2, 10, MISSING, 2)
    s = w.snapshot(3, single_publisher=True)
    assert s.transport_latency is None and s.new_transport_latency_s.size == 0


@pytest.mark.parametrize('window, capacity', [(0.0, 10), (-1.0, 10), (1.0, 1)])
def test_invalid_window_settings(window, capacity):
    with pytest.raises(ValueError):
        TopicWindow(window, capacity, has_header=False)


def test_a_second_publisher_joining_or_leaving_is_not_counted_as_drops():
    w = TopicWindow(5.0, 10_000, has_header=False)
    # The monitor still believes in one publisher while two interleave (discovery lags).
    for i in range(100):
        w.record(i * MS, 10, 0, 10_000 + i if i % 2 else 1 + i)
    assert w.snapshot(100 * MS, single_publisher=True).dropped_total == 0
    # Back to one publisher (the other left): the comparison with its last number is meaningless.
    w.reset_sequence()
    for i in range(100, 150):
        w.record(i * MS, 10, 0, 90_000 + i)
    assert w.snapshot(150 * MS, single_publisher=True).dropped_total == 0
    # A switch to another publisher between two polls: one huge jump, not a burst of losses.
    for i, seq in enumerate([90_150, 90_151, 5_000_000, 5_000_001]):
        w.record((151 + i) * MS, 10, 0, seq)
    assert w.snapshot(160 * MS, single_publisher=True).dropped_total == 0
    # Real gaps on one publisher still count.
    for i, seq in enumerate([5_000_003, 5_000_004]):
        w.record((161 + i) * MS, 10, 0, seq)
    assert w.snapshot(170 * MS, single_publisher=True).dropped_total == 1


def test_no_gap_is_measured_across_a_new_subscription():
    w = TopicWindow(5.0, 10_000, has_header=False)
    for i, seq in enumerate([1, 2, 3]):
        w.record(i * MS, 10, 0, seq)
    w.snapshot(5 * MS, single_publisher=True)
    # Re-subscribed: the messages published meanwhile were never ours to receive.
    for i, seq in enumerate([SEQ_RESET, 41, 42, 44]):
        w.record((6 + i) * MS, 10, 0, seq)
    assert w.snapshot(20 * MS, single_publisher=True).dropped_total == 1


def test_stamps_slightly_ahead_are_jitter_not_future():
    w = TopicWindow(5.0, 100, has_header=True, future_tolerance_s=0.005)
    now = 100 * NS
    w.record(now, 10, 0, 1, now + 3 * MS)     # 3 ms ahead: within tolerance, latency 0
    w.record(now + 1, 10, 0, 2, now + 20 * MS)  # 20 ms ahead: a stamp in the future
    s = w.snapshot(now + 10, single_publisher=True)
    assert (s.future_stamps_window, s.header_latency.count, s.header_latency.max) == (1, 1, 0.0)


def test_negative_transport_latency_is_clock_skew_not_an_observation():
    """A source stamp after the reception stamp (cross-host clock skew): counted apart, never
    observed, so the transport histogram's _sum cannot fall."""
    w = TopicWindow(5.0, 1000, has_header=False)
    for i in range(10):
        w.record(i * MS, 10, -2 * MS if i % 2 else 3 * MS, i + 1)
    s = w.snapshot(10 * MS, single_publisher=True)
    assert (s.new_transport_latency_s >= 0).all() and s.new_transport_latency_s.size == 5
    assert s.transport_skew_total == 5
    assert s.transport_latency.count == 5 and s.transport_latency.p50 == pytest.approx(0.003)


def test_a_window_that_replaces_another_carries_its_counters_on():
    old = TopicWindow(5.0, 1000, has_header=True)
    last = feed(old, 10 * NS, 100.0, 50)
    old.record(last + 10 * MS, 10, 0, 100, 0)              # a zero stamp, a 49-message gap
    s_old = old.snapshot(last + 20 * MS, single_publisher=True)
    new = TopicWindow(5.0, 1000, has_header=False)
    new.carry_totals(old)
    new.record(last + 30 * MS, 10, 0, 1)
    s = new.snapshot(last + 40 * MS, single_publisher=True)
    assert s.messages_total == s_old.messages_total + 1 == 52
    assert s.bytes_total == s_old.bytes_total + 10
    assert s.dropped_total == s_old.dropped_total == 49
    assert s.zero_stamps_total == 1


def test_arrivals_on_a_steady_clock_keep_the_window_sorted_across_a_wall_step():
    """The wall clock steps back 10 s mid-stream (NTP, a manual date): arrivals from wall stamps
    would unsort the window (rate 0.0 for a window length); on the steady clock the rate holds.
    Here, rows as the topic monitor's handler now records them: steady arrival, wall stamp."""
    w = TopicWindow(5.0, 10_000, has_header=True)
    steady, wall = 50 * NS, 1_700_000_000 * NS
    for i in range(1000):
        if i == 500:
            wall -= 10 * NS
        w.record(steady, 10, 50_000, i + 1, wall - MS, wall)
        steady += MS
        wall += MS
    s = w.snapshot(steady, single_publisher=True)
    assert s.rate_hz == pytest.approx(1000.0, rel=1e-3)
    assert s.header_latency.p50 == pytest.approx(0.001)


def test_a_gap_before_a_full_reader_queue_is_the_monitors_loss_not_a_drop():
    """The receiver fell behind: the reader queue (depth 100) overwrote 200 messages, then the
    next take emptied it (100 messages). That gap is the monitor's own loss; a gap elsewhere is
    a drop of the topic."""
    w = TopicWindow(5.0, 10_000, has_header=False)
    for i in range(100):
        w.record(i * MS, 10, 0, i + 1)
    for i in range(300, 400):                   # seqs 301..400 after a 300 ms stall
        w.record(i * MS, 10, 0, i + 1)
    w.mark_queue_full(100)
    for i in range(400, 410):
        if i != 405:                            # one message really lost on the way
            w.record(i * MS, 10, 0, i + 1)
    s = w.snapshot(410 * MS, single_publisher=True)
    assert s.own_lost_total == s.own_lost_window == 200
    assert s.dropped_total == s.dropped_window == 1


@pytest.mark.parametrize('kind', ['uniform', 'ties', 'long_tail', 'beyond_2_53'])
def test_quantiles_are_numpys_percentiles_to_the_last_bit(kind):
    """Quantiles.of sorts once and interpolates itself (np.percentile's fixed cost kept the
    statistics thread busy at 1,000 topics); it must say exactly what np.percentile says."""
    from liquid_edge_ros_monitor.topics.stats import Quantiles
    rng = np.random.default_rng(7)
    for n in [1, 2, 3, 4, 7, 20, 21, 100, 101, 999, 5000]:
        for _ in range(20):
            if kind == 'uniform':
                v = rng.integers(0, 10 ** 9, n)
            elif kind == 'ties':
                v = rng.integers(0, 4, n) * 1000
            elif kind == 'long_tail':
                v = rng.exponential(2e6, n).astype(np.int64)
            else:   # a publisher whose clock was never set: stamps near 1970, latency ~1.7e18 ns
                v = rng.integers(1_700_000_000 * NS, 1_800_000_000 * NS, n)
            q = Quantiles.of(v)
            expected = np.percentile(v, (50, 95, 99)) / NS
            assert (q.p50, q.p95, q.p99) == tuple(float(x) for x in expected)
            assert q.max == float(v.max()) / NS and q.count == n
    assert Quantiles.of(np.zeros(0, dtype=np.int64)) is None
