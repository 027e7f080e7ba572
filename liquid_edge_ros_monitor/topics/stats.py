"""Per-topic statistics over a sliding time window, with bounded memory (no ROS imports).

`TopicWindow.record` is the hot path: it appends one row of six integers to a flat `array('q')`
and nothing else. All arithmetic happens in `TopicWindow.snapshot`, once per update period: the
pending rows become a numpy view (no copy), are folded into the window's columns, and yield an
immutable `TopicSnapshot` that diagnostics, metrics and the live view read. Keeping the window as
numpy columns makes sliding it a `searchsorted` and a slice, not a per-message Python loop.

Times are integer nanoseconds. Arrival times for rates, periods and the window itself are on a
clock that never goes back (the steady clock; sim time when active): a wall-clock step must not
unsort the window. The wall-clock arrival is kept beside it, for the header latency only.
Counters never go back within a process: a window that replaces another (the type changed)
carries its totals on. The window keeps at most `capacity` messages: past that the oldest
fall out early, which shortens the window but keeps every figure a true description of the samples
it holds (rates use the span the samples cover, not the nominal window).
"""
from __future__ import annotations

from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import Deque, Optional, Tuple

import numpy as np

#: Marks a field that the message or the middleware did not provide.
MISSING = -(1 << 62)

#: A sequence number that says "a new subscription starts here": no gap is measured across it.
SEQ_RESET = MISSING + 1

#: Added to a row's sequence number by `mark_queue_full`: the monitor's own reader queue was full
#: when this message was taken, so a gap just before it is the monitor's loss, not the topic's.
QUEUE_FULL = 1 << 61

NS = 1_000_000_000

#: The quantiles `Quantiles` reports, as fractions.
_QUANTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True)
class Quantiles:
    """p50/p95/p99/max of a latency sample, in seconds."""

    p50: float
    p95: float
    p99: float
    max: float
    count: int

    @staticmethod
    def of(values_ns: np.ndarray) -> Optional['Quantiles']:
        """np.percentile's default ('linear') p50/p95/p99, to the last bit, from one sort.

        np.percentile costs ~100 us per call whatever the size (its index bookkeeping); with a
        thousand topics, two calls each per update period kept the statistics thread busy.
        """
        n = int(values_ns.size)
        if n == 0:
            return None
        v = np.sort(values_ns)
        last = n - 1
        q = []
        for p in _QUANTILES:
            virtual = p * last              # numpy: (n - 1) * quantile, then floor and lerp
            lo = int(virtual)
            t = virtual - lo
            ia, ib = int(v[lo]), int(v[min(lo + 1, last)])
            a, b = float(ia), float(ib)
            d = float(ib - ia)              # numpy subtracts in int64, then scales
            q.append((a + d * t if t < 0.5 else b - d * (1 - t)) / NS)
        return Quantiles(q[0], q[1], q[2], float(v[last]) / NS, n)


_EMPTY = np.zeros(0)


@dataclass(frozen=True)
class TopicSnapshot:
    """What one topic looked like over the window ending at `time_ns`."""

    time_ns: int
    window_s: float
    messages_total: int
    bytes_total: int
    window_messages: int
    rate_hz: Optional[float]       # None: fewer than 2 messages in the window
    jitter_s: float
    max_gap_s: float
    bandwidth_bps: float
    mean_size_bytes: float
    age_s: Optional[float]
    header_latency: Optional[Quantiles]
    transport_latency: Optional[Quantiles]
    dropped_total: int
    dropped_window: int
    drops_measurable: bool
    zero_stamps_window: int
    future_stamps_window: int
    zero_stamps_total: int
    future_stamps_total: int
    unreadable_stamps_total: int
    overflowed: bool
    negative_stamps_window: int = 0
    negative_stamps_total: int = 0
    transport_skew_total: int = 0   # DDS source stamp after reception: clock skew, not measured
    own_lost_total: int = 0         # gaps the monitor's own full reader queue made (not drops)
    own_lost_window: int = 0
    # Samples that arrived since the previous snapshot, for histograms (seconds).
    new_header_latency_s: np.ndarray = field(default_factory=lambda: _EMPTY, repr=False,
                                             compare=False)
    new_transport_latency_s: np.ndarray = field(default_factory=lambda: _EMPTY, repr=False,
                                                compare=False)


def _wall(cols: np.ndarray) -> np.ndarray:
    """The wall-clock arrival column, where a row gave none: its arrival."""
    wall = cols[TopicWindow.WALL]
    return np.where(wall == MISSING, cols[TopicWindow.ARRIVAL], wall)


def _classify(arrival: np.ndarray, stamps: np.ndarray, tolerance_ns: int
              ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Header latencies (ns) of the measurable samples, and the masks of the unreadable, zero,
    negative (before 1970: a latency of decades would poison the histogram's sum for good) and
    future stamps, which are counted but never measured. A stamp at most `tolerance_ns` ahead of
    its arrival is clock jitter (sim time's /clock steps, PTP skew) and measures as latency 0."""
    unreadable = stamps == MISSING
    zero = stamps == 0
    negative = ~unreadable & (stamps < 0)
    lat = arrival - stamps
    future = ~unreadable & ~zero & (lat < -tolerance_ns)
    good = ~unreadable & ~zero & ~negative & ~future
    return np.maximum(lat[good], 0), unreadable, zero, negative, future


class TopicWindow:
    """The raw samples of one topic, and the statistics computed from them.

    Threads: `record` and `detach` run on the recording thread; `snapshot(pending=...)` may run
    on another, one call at a time.
    """

    #: Columns of a row: arrival (steady clock), size, transport latency, sequence number, header
    #: stamp, wall-clock arrival (for the header latency; MISSING: same as arrival).
    ARRIVAL, SIZE, TRANSPORT, SEQ, STAMP, WALL = range(6)
    COLUMNS = 6

    def __init__(self, window_s: float, capacity: int, has_header: bool,
                 future_tolerance_s: float = 0.0) -> None:
        if window_s <= 0:
            raise ValueError(f'window must be > 0 s, got {window_s}')
        if capacity < 2:
            raise ValueError(f'capacity must be >= 2 messages, got {capacity}')
        self.window_s = float(window_s)
        self.window_ns = int(window_s * NS)
        self.capacity = capacity
        self.has_header = has_header
        self.future_tolerance_ns = int(future_tolerance_s * NS)
        self._pending = array('q')                     # rows recorded since the last snapshot
        self._cols = np.zeros((self.COLUMNS, 0), dtype=np.int64)  # one row per field, oldest first
        self.messages_total = 0
        self.bytes_total = 0
        self._last_seq: Optional[int] = None
        self._last_arrival_ns: Optional[int] = None
        self._drop_events: Deque[Tuple[int, int]] = deque(maxlen=4096)
        self._own_events: Deque[Tuple[int, int]] = deque(maxlen=4096)
        self.dropped_total = 0
        self.own_lost_total = 0
        self.zero_stamps_total = 0
        self.future_stamps_total = 0
        self.unreadable_stamps_total = 0
        self.negative_stamps_total = 0
        self.transport_skew_total = 0

    def carry_totals(self, old: 'TopicWindow') -> None:
        """Go on from `old`'s counters: a new window (the type changed) is not a new series, and a
        counter that falls to 0 without a restart breaks Prometheus' rate()."""
        for name in ('messages_total', 'bytes_total', 'dropped_total', 'zero_stamps_total',
                     'future_stamps_total', 'unreadable_stamps_total', 'transport_skew_total',
                     'negative_stamps_total',
                     'own_lost_total'):
            setattr(self, name, getattr(self, name) + getattr(old, name))

    def record(self, arrival_ns: int, size: int, transport_ns: int, seq: int,
               stamp_ns: int = MISSING, wall_ns: int = MISSING) -> None:
        """Account one message (hot path). Unknown fields are passed as `MISSING`; `wall_ns`
        only where `arrival_ns` is not on the clock of the header stamps."""
        self._pending.extend((arrival_ns, size, transport_ns, seq, stamp_ns, wall_ns))

    def mark_queue_full(self, taken: int) -> None:
        """The last `taken` rows were taken from a full reader queue (recording thread): a gap
        before the first of them is the monitor's own overflow (it fell behind), not a drop."""
        i = len(self._pending) - taken * self.COLUMNS + self.SEQ
        if i >= self.SEQ and 0 < self._pending[i] < QUEUE_FULL:
            self._pending[i] += QUEUE_FULL

    def reset_sequence(self) -> None:
        """Forget the last sequence number (the subscription or its publishers changed)."""
        self._last_seq = None

    def detach(self) -> array:
        """Hand over the rows recorded so far (on the recording thread), for `snapshot`."""
        pending, self._pending = self._pending, array('q')
        return pending

    def snapshot(self, now_ns: int, single_publisher: bool,
                 pending: Optional[array] = None) -> TopicSnapshot:
        """Compute the statistics of the window ending at `now_ns` and trim older samples.

        `pending` are rows from `detach()`: the recording thread hands them over and another
        thread does this arithmetic. Without it, the rows recorded so far are taken here.
        `single_publisher` says whether sequence-number gaps mean drops: with several publishers
        their sequences interleave and MessageInfo does not say which one sent a message.
        """
        if pending is None:
            pending = self.detach()
        # Fields become contiguous rows (column-major), so every statistic reads contiguous memory.
        new = np.frombuffer(pending, dtype=np.int64).reshape(-1, self.COLUMNS).T
        k = new.shape[1]
        new_header = _EMPTY
        new_transport = _EMPTY
        if k:
            self.messages_total += k
            self.bytes_total += int(new[self.SIZE].sum())
            self._last_arrival_ns = int(new[self.ARRIVAL, -1])
            if self.has_header:
                new_header = self._count_stamps(_wall(new), new[self.STAMP])
            transport = new[self.TRANSPORT]
            # A source stamp after the reception stamp is clock skew between hosts: counted,
            # never observed (a negative observation would make the histogram's _sum fall).
            skewed = (transport != MISSING) & (transport < 0)
            self.transport_skew_total += int(skewed.sum())
            new_transport = transport[(transport != MISSING) & ~skewed] / NS
            self._count_drops(now_ns, new[self.SEQ], single_publisher)
            cols = np.concatenate((self._cols, new), axis=1)
        else:
            cols = self._cols
        # Slide: keep what arrived within the window, and at most `capacity` messages.
        held = cols.shape[1]
        first = int(np.searchsorted(cols[self.ARRIVAL], now_ns - self.window_ns, side='left'))
        overflowed = held - first > self.capacity
        first = max(first, held - self.capacity)
        self._cols = cols = cols[:, first:]

        arrival = cols[self.ARRIVAL]
        n = arrival.size
        age_s = None if self._last_arrival_ns is None else (now_ns - self._last_arrival_ns) / NS

        rate: Optional[float] = None
        jitter = max_gap = 0.0
        if n >= 2:
            periods = np.diff(arrival)
            span = int(arrival[-1] - arrival[0])
            mean_period = span / (n - 1)
            silence = now_ns - int(arrival[-1])
            if silence > 2 * mean_period:
                # The topic went quiet: let the silence count, so the rate decays towards zero.
                span = now_ns - int(arrival[0])
            rate = (n - 1) * NS / span if span > 0 else 0.0
            jitter = float(periods.std()) / NS
            max_gap = float(periods.max()) / NS
        mean_size = float(cols[self.SIZE].mean()) if n else 0.0

        header_q = None
        zero_w = future_w = negative_w = 0
        if self.has_header and n:
            lat, _, zero, negative, future = _classify(_wall(cols), cols[self.STAMP],
                                                       self.future_tolerance_ns)
            zero_w, future_w, negative_w = int(zero.sum()), int(future.sum()), int(negative.sum())
            header_q = Quantiles.of(lat)
        transport = cols[self.TRANSPORT]
        transport_q = Quantiles.of(transport[(transport != MISSING) & (transport >= 0)]) if n \
            else None

        cutoff = now_ns - self.window_ns
        dropped_window = sum(c for t, c in self._drop_events if t >= cutoff)
        own_window = sum(c for t, c in self._own_events if t >= cutoff)
        return TopicSnapshot(
            time_ns=now_ns, window_s=self.window_s, messages_total=self.messages_total,
            bytes_total=self.bytes_total, window_messages=n, rate_hz=rate, jitter_s=jitter,
            max_gap_s=max_gap, bandwidth_bps=(rate or 0.0) * mean_size, mean_size_bytes=mean_size,
            age_s=age_s, header_latency=header_q, transport_latency=transport_q,
            dropped_total=self.dropped_total, dropped_window=dropped_window,
            drops_measurable=single_publisher, zero_stamps_window=zero_w,
            future_stamps_window=future_w, zero_stamps_total=self.zero_stamps_total,
            future_stamps_total=self.future_stamps_total,
            unreadable_stamps_total=self.unreadable_stamps_total, overflowed=overflowed,
            negative_stamps_window=negative_w, negative_stamps_total=self.negative_stamps_total,
            transport_skew_total=self.transport_skew_total,
            own_lost_total=self.own_lost_total, own_lost_window=own_window,
            new_header_latency_s=new_header, new_transport_latency_s=new_transport)

    def _count_stamps(self, arrival: np.ndarray, stamps: np.ndarray) -> np.ndarray:
        """Update the invalid-stamp counters for new samples; return their good latencies (s)."""
        lat, unreadable, zero, negative, future = _classify(arrival, stamps,
                                                            self.future_tolerance_ns)
        self.unreadable_stamps_total += int(unreadable.sum())
        self.negative_stamps_total += int(negative.sum())
        self.zero_stamps_total += int(zero.sum())
        self.future_stamps_total += int(future.sum())
        return lat / NS

    def _count_drops(self, now_ns: int, seqs: np.ndarray, single_publisher: bool) -> None:
        """Count gaps in the publication sequence as drops, where they can only mean drops.

        No gap is measured across a `SEQ_RESET` (a new subscription) or a `reset_sequence()`
        (the publishers changed). A batch with any step <= 0 holds interleaved publishers or a
        restart, so its gaps mean nothing and none are counted; neither is a single jump of more
        than `capacity` messages, which is a publisher switch, not a burst of losses.
        """
        seqs = seqs[seqs != MISSING]
        if seqs.size == 0:
            return
        full = seqs >= QUEUE_FULL
        if full.any():
            seqs = np.where(full, seqs - QUEUE_FULL, seqs)
        if self._last_seq is not None:
            seqs = np.concatenate(([self._last_seq], seqs))
            full = np.concatenate(([False], full))
        last = int(seqs[-1])
        self._last_seq = None if last == SEQ_RESET else last
        if not single_publisher or seqs.size < 2:
            return
        valid = (seqs[1:] != SEQ_RESET) & (seqs[:-1] != SEQ_RESET)
        steps = np.diff(seqs)[valid]
        if steps.size == 0 or (steps <= 0).any():
            return
        gap = (steps > 1) & (steps <= self.capacity)
        own = gap & full[1:][valid]
        lost = int((steps[own] - 1).sum())
        dropped = int((steps[gap & ~own] - 1).sum())
        if dropped:
            self.dropped_total += dropped
            self._drop_events.append((now_ns, dropped))
        if lost:
            self.own_lost_total += lost
            self._own_events.append((now_ns, lost))
