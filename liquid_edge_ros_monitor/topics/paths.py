"""Black-box paths (no ROS): how fast a node that cannot be changed reacts, seen from its topics.

A path names one or more input topics, an output topic and a deadline. Every message on them is
already received by the topic monitor; the path only pairs them:

- **Reaction latency.** Exact when the output carries its input's `header.stamp` (a stamped
  command, derived data): the output is matched to the input with that stamp, and the latency is
  the output's arrival minus that input's. Otherwise (no header, or a stamp of its own) it is the
  output's arrival minus the arrival of the latest input before it: the node's reaction to the
  freshest input it could have used. Both are arrival times at the monitor, so the input's
  transport to the node is left out and the output's transport back is in.
- **Missed inputs.** An input with no answer within the deadline. Matched by stamp, an output
  answers its own input only, even one that reached the monitor after the answer did (its
  latency is then unknown, not negative): an input the node skipped never gets its stamp back, however soon
  the next output comes (so a generous deadline still counts a dropped input). Paired by arrival,
  an output answers every input not older than the deadline before it: a node that downsamples
  (outputs at 50 Hz from a 200 Hz input) misses nothing with a deadline of one output period.
- **Silence.** No output for `silence_timeout` while inputs still arrive.

`PathMatcher` runs on the receiver thread (one list append per message; the pairing once per
update period, in arrival order); `detach` hands what it found to the statistics thread, where
`PathWindow` keeps the sliding window and makes the level and message.
"""
from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field
from typing import Deque, Dict, List, Optional, Tuple

import numpy as np

from ..core.levels import ERROR, OK, STALE, WARN, held_level

#: Inputs waiting for an output, at most (a node that stopped answering cannot grow memory).
MAX_PENDING = 4096
#: How long past its deadline an input waits for an output the receiver has not taken yet.
EXPIRY_GRACE_NS = 500_000_000


@dataclass(frozen=True)
class PathConfig:
    """One path, its topic names resolved."""

    key: str
    inputs: Tuple[str, ...]
    output: str
    deadline: float                 # s
    missed_warn: float = 0.05       # share of the window's inputs missed for WARN
    silence_timeout: float = 1.0    # s without output while inputs arrive: ERROR
    hysteresis: float = 0.03        # the topics' defaults.hysteresis (0: none)


@dataclass
class PathRows:
    """What a matcher collected since the last `detach` (statistics thread from then on)."""

    latencies_ns: List[int] = field(default_factory=list)
    by_stamp: int = 0               # outputs matched to their input by header.stamp
    by_arrival: int = 0             # outputs paired with the latest input before them
    unpaired: int = 0               # outputs with no input before them
    inputs: int = 0
    answered: int = 0               # inputs covered by an output within the deadline
    missed: int = 0                 # inputs whose deadline passed uncovered
    last_input_ns: Optional[int] = None
    last_output_ns: Optional[int] = None


class PathMatcher:
    """Pairs one path's inputs and outputs.

    The receiver thread only notes each message (`on_input`, `on_output`: one list append); the
    pairing happens in `detach`, once per update period on the same thread, in the order of the
    messages' arrival times. Taken in the order the receiver takes them, an output taken before
    its own input in the same wake-up (the receiver drains one subscription after another) found
    no input to match: under load 13-27 % of answered inputs read as missed."""

    def __init__(self, config: PathConfig) -> None:
        self.config = config
        self._deadline_ns = int(config.deadline * 1e9)
        self._new_inputs: List[Tuple[int, Optional[int]]] = []
        self._new_outputs: List[Tuple[int, Optional[int]]] = []
        #: Inputs not yet expired, by arrival: [arrival ns, stamp or None, answered].
        self._pending: List[list] = []
        self._arrivals: List[int] = []            # the same, arrival times only (for bisect)
        self._by_stamp: Dict[int, list] = {}
        #: Stamped outputs whose input was not there yet: one more period to find it.
        self._waiting: List[Tuple[int, int]] = []
        self._rows = PathRows()

    def on_input(self, arrival_ns: int, stamp_ns: Optional[int]) -> None:
        self._new_inputs.append((arrival_ns, stamp_ns))

    def on_output(self, arrival_ns: int, stamp_ns: Optional[int]) -> None:
        self._new_outputs.append((arrival_ns, stamp_ns))

    def detach(self, now_ns: int) -> PathRows:
        """Pair what arrived since the last call and hand the result over (receiver thread,
        each update period)."""
        rows = self._rows
        self._take_inputs(rows)
        outputs, self._new_outputs = self._new_outputs, []
        if outputs:
            last = max(a for a, _ in outputs)
            if rows.last_output_ns is None or last > rows.last_output_ns:
                rows.last_output_ns = last
        waiting, self._waiting = self._waiting, []
        for arrival, stamp, waited in self._ordered(outputs, waiting):
            self._pair(arrival, stamp, waited, rows)
        self._expire(now_ns, rows)
        self._rows = PathRows(last_input_ns=rows.last_input_ns,
                              last_output_ns=rows.last_output_ns)
        return rows

    @staticmethod
    def _ordered(outputs: List[Tuple[int, Optional[int]]],
                 waiting: List[Tuple[int, int]]) -> List[Tuple[int, Optional[int], bool]]:
        """This period's outputs and last period's waiting ones, by arrival; True for those that
        waited already (they pair by arrival if their stamp still matches nothing)."""
        return sorted([(a, s, False) for a, s in outputs] + [(a, s, True) for a, s in waiting],
                      key=lambda o: o[0])

    def _take_inputs(self, rows: PathRows) -> None:
        new, self._new_inputs = self._new_inputs, []
        if not new:
            return
        new.sort(key=lambda i: i[0])
        pending, arrivals = self._pending, self._arrivals
        for arrival, stamp in new:
            entry = [arrival, stamp, False]
            if arrivals and arrival < arrivals[-1]:       # rare: older than the newest pending
                k = bisect.bisect_right(arrivals, arrival)
                arrivals.insert(k, arrival)
                pending.insert(k, entry)
            else:
                arrivals.append(arrival)
                pending.append(entry)
            if stamp is not None:
                self._by_stamp[stamp] = entry
        rows.inputs += len(new)
        if rows.last_input_ns is None or new[-1][0] > rows.last_input_ns:
            rows.last_input_ns = new[-1][0]

    def _pair(self, arrival: int, stamp: Optional[int], waited: bool, rows: PathRows) -> None:
        since = arrival - self._deadline_ns
        matched = self._by_stamp.get(stamp) if stamp is not None else None
        if matched is not None:
            rows.by_stamp += 1
            if matched[0] <= arrival:
                rows.latencies_ns.append(arrival - matched[0])
            # else its input reached the monitor after the answer did (the monitor's reader of
            # the input was later than the node's): answered, its latency unknown, not negative.
            # Required to follow arrival order, 23 % of the demo's inputs read as missed with one
            # core held busy (bench/diagnostics_levels.py), the node having answered them all.
            if not matched[2] and matched[0] >= since:
                matched[2] = True
                rows.answered += 1
            return
        if stamp is not None and not waited:
            self._waiting.append((arrival, stamp))        # its input may come next period
            return
        k = bisect.bisect_right(self._arrivals, arrival) - 1
        if k < 0:
            rows.unpaired += 1
            return
        pending = self._pending
        rows.by_arrival += 1
        rows.latencies_ns.append(arrival - pending[k][0])
        while k >= 0 and pending[k][0] >= since:         # every input in the deadline before it
            if not pending[k][2]:
                pending[k][2] = True
                rows.answered += 1
            k -= 1

    def _expire(self, now_ns: int, rows: PathRows) -> None:
        """Inputs older than the deadline (and a grace for outputs still to be taken) leave,
        missed unless answered; at most `MAX_PENDING` stay."""
        limit = now_ns - self._deadline_ns - EXPIRY_GRACE_NS
        arrivals = self._arrivals
        k = bisect.bisect_left(arrivals, limit)
        k = max(k, len(arrivals) - MAX_PENDING)
        if k <= 0:
            return
        for entry in self._pending[:k]:
            if not entry[2]:
                rows.missed += 1
            stamp = entry[1]
            if stamp is not None and self._by_stamp.get(stamp) is entry:
                del self._by_stamp[stamp]
        del self._pending[:k]
        del arrivals[:k]


@dataclass(frozen=True)
class PathReport:
    """One path's state at one update (immutable: rendered and published as it is)."""

    config: PathConfig
    level: int
    message: str
    latency_p50_s: Optional[float]
    latency_p95_s: Optional[float]
    missed_ratio: Optional[float]          # in the window
    outputs_per_input: Optional[float]     # in the window
    silence_s: Optional[float]             # since the last output (the first input before one)
    totals: Tuple[int, int, int, int, int]  # inputs, missed, by_stamp, by_arrival, unpaired
    new_latencies_s: np.ndarray            # for the histogram, since the last report


class PathWindow:
    """The sliding window of one path (statistics thread)."""

    def __init__(self, config: PathConfig, window_s: float) -> None:
        self.config = config
        self._window_ns = int(window_s * 1e9)
        self._batches: Deque[Tuple[int, PathRows]] = deque()
        self._totals = [0, 0, 0, 0, 0]
        self._first_input: Optional[int] = None
        self._last_input: Optional[int] = None
        self._last_output: Optional[int] = None
        self._held: Dict[str, int] = {}       # the level each check gave last time

    def update(self, now_ns: int, rows: PathRows) -> PathReport:
        c = self.config
        self._batches.append((now_ns, rows))
        while self._batches and self._batches[0][0] <= now_ns - self._window_ns:
            self._batches.popleft()
        t = self._totals
        for i, n in enumerate((rows.inputs, rows.missed, rows.by_stamp, rows.by_arrival,
                               rows.unpaired)):
            t[i] += n
        if rows.last_input_ns is not None:
            self._last_input = rows.last_input_ns
            if self._first_input is None:
                self._first_input = rows.last_input_ns
        if rows.last_output_ns is not None:
            self._last_output = rows.last_output_ns
        batches = [b for _, b in self._batches]
        lat = np.fromiter((v for b in batches for v in b.latencies_ns), dtype=np.int64)
        inputs = sum(b.inputs for b in batches)
        judged = sum(b.answered + b.missed for b in batches)
        missed = sum(b.missed for b in batches)
        outputs = sum(b.by_stamp + b.by_arrival + b.unpaired for b in batches)
        p50 = p95 = None
        if lat.size:
            p50, p95 = (float(q) * 1e-9 for q in np.percentile(lat, (50, 95)))
        missed_ratio = missed / judged if judged else None
        per_input = outputs / inputs if inputs else None
        since = self._last_output if self._last_output is not None else self._first_input
        silence = (now_ns - since) * 1e-9 if since is not None else None
        input_age = (now_ns - self._last_input) * 1e-9 if self._last_input is not None else None
        level, message = _judge(c, p95, missed_ratio, missed, judged, silence, input_age,
                                self._held)
        new = np.asarray(rows.latencies_ns, dtype=np.float64) * 1e-9
        return PathReport(c, level, message, p50, p95, missed_ratio, per_input, silence,
                          tuple(t), new)  # type: ignore[arg-type]


#: Above this share of inputs missed, the path is ERROR.
MISSED_ERROR_RATIO = 0.5
#: A missed-input level clears once the share is under this fraction below its limit (half):
#: missed inputs are small counts, as drops are (`topics.health.DROP_CLEAR_MARGIN`).
MISSED_CLEAR_MARGIN = 0.5


def _judge(c: PathConfig, p95: Optional[float], missed_ratio: Optional[float], missed: int,
           judged: int, silence: Optional[float], input_age: Optional[float],
           held: Dict[str, int]) -> Tuple[int, str]:
    """Level and message, the reason for the level first. `held`: the level each threshold
    check gave last time (updated here), for the same hysteresis as the topics' statuses: under
    load the missed share and the p95 hover at their limits (the path flipped 11 times in 300 s
    of the loaded demo without it)."""
    inputs_flow = input_age is not None and input_age <= c.silence_timeout
    if not inputs_flow:
        held.clear()
        return STALE, (f'no input on {", ".join(c.inputs)}' if input_age is None else
                       f'no input for {input_age:.1f} s: nothing to judge')
    if silence is not None and silence > c.silence_timeout:
        held.clear()
        return ERROR, f'no output for {silence:.1f} s while inputs arrive'
    deadline_ms = f'{c.deadline * 1e3:g} ms'
    if missed_ratio is not None:
        margin = MISSED_CLEAR_MARGIN if c.hysteresis else 0.0
        lvl = held['missed'] = held_level(missed_ratio, c.missed_warn, MISSED_ERROR_RATIO,
                                          True, held.get('missed', OK), margin)
        limit = MISSED_ERROR_RATIO if lvl == ERROR else c.missed_warn
        if lvl and missed_ratio > limit:
            return lvl, f'{missed} of {judged} inputs without output in {deadline_ms}'
        if lvl:
            return lvl, (f'{missed_ratio:.1%} missed: clears at {limit * (1 - margin):.1%} '
                         f'({deadline_ms} deadline)')
    if p95 is None:
        held.pop('latency', None)
        return OK, 'inputs arrive, no reaction measured yet'
    lvl = held['latency'] = held_level(p95, c.deadline, 0.0, True, held.get('latency', OK),
                                       c.hysteresis)
    if lvl and p95 > c.deadline:
        return WARN, f'reaction p95 {p95 * 1e3:.1f} ms above {deadline_ms} deadline'
    if lvl:
        return WARN, (f'reaction p95 {p95 * 1e3:.1f} ms: clears at '
                      f'{c.deadline * (1 - c.hysteresis) * 1e3:.1f} ms ({deadline_ms} deadline)')
    return OK, f'reaction p95 {p95 * 1e3:.1f} ms'
