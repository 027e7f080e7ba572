"""Black-box paths (no ROS): how fast a node that cannot be changed reacts, seen from its topics.

A path names one or more input topics, an output topic and a deadline. Every message on them is
already received by the topic monitor; the path only pairs them:

- **Reaction latency.** Exact when the output carries its input's `header.stamp` (a stamped
  command, derived data): the output is matched to the input with that stamp, and the latency is
  the output's arrival minus that input's. Otherwise (no header, or a stamp of its own) it is the
  output's arrival minus the arrival of the latest input before it: the node's reaction to the
  freshest input it could have used. Both are arrival times at the monitor, so the input's
  transport to the node is left out and the output's transport back is in.
- **Missed inputs.** An input that no output covers within the deadline: an output covers the
  inputs that arrived before it (before its matched input, when matched by stamp) and not longer
  than the deadline before it. A node that downsamples (outputs at 50 Hz from a 200 Hz input)
  misses nothing with a deadline of one output period.
- **Silence.** No output for `silence_timeout` while inputs still arrive.

`PathMatcher` runs on the receiver thread (one call per message, a deque and a dict, no
allocation beyond the pending entry); `detach` hands what it collected to the statistics thread,
where `PathWindow` keeps the sliding window and `report` makes the level and message.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Deque, Dict, List, Optional, Tuple

import numpy as np

from ..core.levels import ERROR, OK, STALE, WARN

#: Inputs waiting for an output, at most (a node that stopped answering cannot grow memory).
MAX_PENDING = 4096


@dataclass(frozen=True)
class PathConfig:
    """One path, its topic names resolved."""

    key: str
    inputs: Tuple[str, ...]
    output: str
    deadline: float                 # s
    missed_warn: float = 0.05       # share of the window's inputs missed for WARN
    silence_timeout: float = 1.0    # s without output while inputs arrive: ERROR


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
    """Pairs one path's inputs and outputs (receiver thread)."""

    def __init__(self, config: PathConfig) -> None:
        self.config = config
        self._deadline_ns = int(config.deadline * 1e9)
        #: Inputs not yet covered nor expired: [arrival ns, stamp or None, covered].
        self._pending: Deque[list] = deque()
        self._by_stamp: Dict[int, list] = {}
        self._latest_ns: Optional[int] = None
        self._rows = PathRows()

    def on_input(self, arrival_ns: int, stamp_ns: Optional[int]) -> None:
        entry = [arrival_ns, stamp_ns, False]
        pending = self._pending
        if len(pending) >= MAX_PENDING:
            self._expire(pending[0][0] + self._deadline_ns + 1)
            if len(pending) >= MAX_PENDING:           # all still within their deadline
                old = pending.popleft()
                self._drop(old)
        pending.append(entry)
        if stamp_ns is not None:
            self._by_stamp[stamp_ns] = entry
        self._latest_ns = arrival_ns
        rows = self._rows
        rows.inputs += 1
        rows.last_input_ns = arrival_ns

    def on_output(self, arrival_ns: int, stamp_ns: Optional[int]) -> None:
        rows = self._rows
        rows.last_output_ns = arrival_ns
        matched = self._by_stamp.get(stamp_ns) if stamp_ns is not None else None
        if matched is not None and matched[0] <= arrival_ns:
            rows.by_stamp += 1
            rows.latencies_ns.append(arrival_ns - matched[0])
            upto = matched[0]
        elif self._latest_ns is not None and self._latest_ns <= arrival_ns:
            rows.by_arrival += 1
            rows.latencies_ns.append(arrival_ns - self._latest_ns)
            upto = arrival_ns
        else:
            rows.unpaired += 1
            return
        since = arrival_ns - self._deadline_ns
        for entry in self._pending:                   # oldest first
            if entry[0] > upto:
                break
            if not entry[2] and entry[0] >= since:
                entry[2] = True
                rows.answered += 1

    def _expire(self, now_ns: int) -> None:
        """Inputs whose deadline has passed leave the pending queue, missed unless covered."""
        pending = self._pending
        limit = now_ns - self._deadline_ns
        while pending and pending[0][0] < limit:
            self._drop(pending.popleft())

    def _drop(self, entry: list) -> None:
        if not entry[2]:
            self._rows.missed += 1
        if entry[1] is not None and self._by_stamp.get(entry[1]) is entry:
            del self._by_stamp[entry[1]]

    def detach(self, now_ns: int) -> PathRows:
        """What was collected since the last call (receiver thread, each update period)."""
        self._expire(now_ns)
        rows, self._rows = self._rows, PathRows(last_input_ns=self._rows.last_input_ns,
                                                last_output_ns=self._rows.last_output_ns)
        return rows


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
        level, message = _judge(c, p95, missed_ratio, missed, judged, silence, input_age)
        new = np.asarray(rows.latencies_ns, dtype=np.float64) * 1e-9
        return PathReport(c, level, message, p50, p95, missed_ratio, per_input, silence,
                          tuple(t), new)  # type: ignore[arg-type]


def _judge(c: PathConfig, p95: Optional[float], missed_ratio: Optional[float], missed: int,
           judged: int, silence: Optional[float], input_age: Optional[float]) -> Tuple[int, str]:
    """Level and message, the reason for the level first."""
    inputs_flow = input_age is not None and input_age <= c.silence_timeout
    if not inputs_flow:
        return STALE, (f'no input on {", ".join(c.inputs)}' if input_age is None else
                       f'no input for {input_age:.1f} s: nothing to judge')
    if silence is not None and silence > c.silence_timeout:
        return ERROR, f'no output for {silence:.1f} s while inputs arrive'
    if missed_ratio is not None and missed_ratio > 0.5:
        return ERROR, (f'{missed} of {judged} inputs without output in '
                       f'{c.deadline * 1e3:g} ms')
    if missed_ratio is not None and missed_ratio > c.missed_warn:
        return WARN, f'{missed} of {judged} inputs without output in {c.deadline * 1e3:g} ms'
    if p95 is not None and p95 > c.deadline:
        return WARN, f'reaction p95 {p95 * 1e3:.1f} ms above {c.deadline * 1e3:g} ms deadline'
    if p95 is None:
        return OK, 'inputs arrive, no reaction measured yet'
    return OK, f'reaction p95 {p95 * 1e3:.1f} ms'
