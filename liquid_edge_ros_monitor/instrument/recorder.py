"""Instrumented callbacks, one at a time (no ROS): their timing and stages, whether they failed,
and whether their trace is kept.

`begin` and `end` bracket the user's callback; `stage(name)` marks a part of it. A callback whose
trace is not kept costs a few monotonic clock reads, a ContextVar set and reset, and one slot write
that hands it to the monitor's update timer (`stats.Handoff`); a kept one also builds one
`CallbackRecord` that a background thread turns into spans (`trace_export`). The timer computes
the latencies (`drain`, into `stats.LatencyRing`s), then histograms, quantiles and exemplars.

The callback's trace id is drawn when first asked for (when tracing is on): by a log line written
while it runs (`core.jsonlog.trace_ids`), or by keeping its trace; both then get the same one.
"""
from __future__ import annotations

from collections import deque
from time import monotonic_ns, time_ns
from typing import Any, Deque, Dict, List, Literal, Optional, Sequence, Tuple

from ..core.jsonlog import trace_ids as _active
from ..core.msg_info import sequence_number
from .freshness import Freshness
from .stats import Handoff, LatencyRing
from .tail_sampling import TailSampler
from .trace_export import MAX_STAGES, CallbackRecord, KeptTraces, new_ids

#: Ended callbacks held for `drain` at most (a timer this far behind has lost the older ones).
FINISHED_MAX = 2048
#: Smoothing of the interval between callbacks (the deadline when none is configured).
INTERVAL_ALPHA = 0.01


class ActiveCallback:
    """The callback being run: its start, stages, first error, and what was reported of it.

    It is the value of `core.jsonlog.trace_ids` while it runs (one ContextVar for the log lines'
    ids and for the monitor's own bookkeeping: a second set and reset per callback cost about
    1 us of the example's callback). Its trace ids are drawn when first asked for, by a log line
    written while it runs or by keeping its trace: most callbacks need none."""

    __slots__ = ('t0', 't1', 'owner', 'outer', 'stages', 'error', 'inputs_seen', 'skipped', 'token',
                 '_ids')

    def __init__(self, t0: int, owner: 'CallbackRecorder',
                 outer: Optional['ActiveCallback']) -> None:
        self.t0 = t0                      # monotonic ns
        self.t1 = 0                       # its end, monotonic ns (0 while it runs)
        self.owner = owner                # the recorder it belongs to
        self.outer = outer                # what was active when it began (another monitor's)
        self.stages: List[list] = []      # [name, start ns, end ns] (monotonic)
        self.error: Optional[str] = None
        self.inputs_seen = False
        self.skipped = False
        self.token: Any = None
        self._ids: Optional[Tuple[int, int]] = None

    def trace_ids(self) -> Optional[Tuple[int, int]]:
        """(trace id, span id) of this callback's trace, drawn on the first call and the same
        after; None when its monitor exports no traces."""
        ids = self._ids
        if ids is None and self.owner.kept is not None:
            ids = self._ids = new_ids()
        return ids


def _own(active: Optional[ActiveCallback], owner: 'CallbackRecorder') -> Optional[ActiveCallback]:
    """`owner`'s callback among the active ones (innermost first), or None."""
    while active is not None and active.owner is not owner:
        active = active.outer
    return active


class Stage:
    """`with monitor.stage('forward'):` marks one stage of the active callback (reusable, one per
    name, so entering it allocates only the stage's mark)."""

    __slots__ = ('name', '_owner')

    def __init__(self, name: str, owner: 'CallbackRecorder') -> None:
        self.name = name
        self._owner = owner

    def __enter__(self) -> 'Stage':
        cb = _active.get()
        if cb is not None and cb.owner is not self._owner:
            cb = _own(cb, self._owner)
        if cb is not None:
            cb.stages.append([self.name, monotonic_ns(), 0])
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Literal[False]:  # no *args: no tuple
        cb = _active.get()
        if cb is not None and cb.owner is not self._owner:
            cb = _own(cb, self._owner)
        if cb is not None:
            t = monotonic_ns()
            marks = cb.stages
            mark = marks[-1] if marks else None
            if mark is not None and mark[0] is self.name and mark[2] == 0:
                mark[2] = t                         # the last one: stages in sequence
                return False
            for mark in reversed(marks):            # nested stages: the innermost open one
                if mark[2] == 0 and mark[0] == self.name:
                    mark[2] = t
                    break
        return False


def message_attributes(args: Sequence[Any]) -> Dict[str, Any]:
    """Span attributes of a subscription callback's arguments (message, MessageInfo): the header's
    stamp and frame, the DDS publication sequence number when the rmw provides one. A ROS message
    carries no trace context, so these are what correlate a span with a message. Never raises."""
    attrs: Dict[str, Any] = {}
    try:
        header = getattr(args[0], 'header', None) if args else None
        stamp = getattr(header, 'stamp', None)
        if header is not None and stamp is not None:
            attrs['ros.header.stamp_ns'] = stamp.sec * 1_000_000_000 + stamp.nanosec
            attrs['ros.header.frame_id'] = str(header.frame_id)
        seq = sequence_number(args[1]) if len(args) > 1 else None
        if seq is not None:
            attrs['dds.publication_sequence_number'] = seq
    except Exception:  # noqa: BLE001 - attributes are a courtesy, never the callback's failure
        pass
    return attrs


class CallbackRecorder:
    """Times the callbacks of one monitor and hands the kept ones to tracing. With a `sampler`
    and no `kept` (tracing on, no endpoint) the kept traces are counted, not made."""

    # Slots: every callback reads several of these, and without an instance dict each read stays
    # in the object.
    __slots__ = ('span_name', 'span_attributes', 'freshness', 'metrics', 'sampler', 'kept',
                 'deadline_s', 'interval_ema', 'callback', 'stage_rings', 'stages',
                 '_last_t0', 'exemplars', 'finished')

    def __init__(self, span_name: str, span_attributes: Dict[str, Any], freshness: Freshness,
                 metrics: Any, sampler: Optional[TailSampler] = None,
                 kept: Optional[KeptTraces] = None, deadline_s: float = 0.0) -> None:
        self.span_name = span_name
        self.span_attributes = span_attributes
        self.freshness = freshness
        self.metrics = metrics            # InferenceMetrics: the counters are written there
        self.sampler = sampler
        self.kept = kept
        #: The deadline of one callback, seconds; 0 = the smoothed interval between callbacks.
        self.deadline_s = deadline_s
        self.interval_ema: Optional[float] = None
        #: Latencies of the callbacks and of each stage, seconds, filled by `drain`.
        self.callback = LatencyRing()
        self.stage_rings: Dict[str, LatencyRing] = {}
        #: Callbacks ended since the last `drain`: `end` only hands them over (one slot write
        #: for the callback and all its stages, against a ring write and a lookup each: 2 to 3
        #: us less on the example's torch callback, ablation on a 2-core VM).
        self.finished = Handoff(FINISHED_MAX)
        #: Stage name -> its reusable context manager.
        self.stages: Dict[str, Stage] = {}
        self._last_t0: Optional[int] = None
        #: Kept callbacks' (stage, seconds, trace id, span id, wall s): the histograms' exemplars.
        self.exemplars: Deque[Tuple[str, float, int, int, float]] = deque(maxlen=64)

    def stage(self, name: str) -> Stage:
        s = self.stages.get(name)
        if s is None:
            s = self.stages[name] = Stage(name, self)
        return s

    def deadline(self) -> Optional[float]:
        return self.deadline_s or self.interval_ema

    # ---- one callback --------------------------------------------------------------------------

    def begin(self) -> ActiveCallback:
        t0 = monotonic_ns()
        last, self._last_t0 = self._last_t0, t0
        if last is not None and not self.deadline_s:
            interval = (t0 - last) * 1e-9
            ema = self.interval_ema
            self.interval_ema = interval if ema is None else ema + INTERVAL_ALPHA * (interval - ema)
        outer = _active.get()
        cb = ActiveCallback(t0, self, outer)
        cb.token = _active.set(cb)
        return cb

    def current(self) -> Optional[ActiveCallback]:
        """This recorder's running callback in this thread, or None."""
        cb = _active.get()
        return cb if cb is None or cb.owner is self else _own(cb, self)

    def mark_error(self, reason: str) -> None:
        """The active callback failed (its first reason is the one traced)."""
        cb = self.current()
        if cb is not None and cb.error is None:
            cb.error = reason

    def end(self, cb: ActiveCallback, args: Sequence[Any]) -> None:
        """After the callback (also when it raised): time it, count it, keep its trace or not."""
        t1 = monotonic_ns()
        _active.reset(cb.token)
        if cb.skipped:
            return
        t0 = cb.t0
        took = (t1 - t0) * 1e-9
        cb.t1 = t1
        self.finished.put(cb)
        m = self.metrics
        m.inferences += 1
        deadline = self.deadline_s or self.interval_ema
        if deadline and took > deadline:
            m.deadline_misses += 1
        if not cb.inputs_seen:             # no inputs reported: every callback is an input
            self.freshness.usable(t0, t1)
        sampler = self.sampler
        if sampler is None:
            return
        reason = sampler.decide(cb.error is not None, took, deadline, t0 * 1e-9)
        if reason is None or self.kept is None:     # no endpoint: counted, not exported
            return
        self._keep(cb, t1, took, reason, args)

    def drain(self) -> None:
        """The latencies of the callbacks ended since the last call into `callback` and
        `stage_rings` (the update timer calls it, and the latency status before it reads them).
        At most `MAX_STAGES` stage names are kept."""
        rings = self.stage_rings
        add = self.callback.add
        for cb in self.finished.take():
            t1 = cb.t1
            add((t1 - cb.t0) * 1e-9)
            for name, start, end in cb.stages:
                ring = rings.get(name)
                if ring is None:
                    if len(rings) >= MAX_STAGES:
                        continue
                    ring = rings[name] = LatencyRing()
                ring.add(((end or t1) - start) * 1e-9)

    def _keep(self, cb: ActiveCallback, t1: int, took: float, reason: str,
              args: Sequence[Any]) -> None:
        t0 = cb.t0
        wall0 = time_ns() - (monotonic_ns() - t0)  # the start on the wall clock (untraced: not read)
        trace_id, span_id = cb.trace_ids()  # type: ignore[misc]  # kept: an exporter
        attrs = dict(self.span_attributes)
        attrs.update(message_attributes(args))
        attrs['liquid_edge.keep_reason'] = reason
        if cb.error is not None:
            attrs['lnn.error'] = cb.error
        stages = tuple((name, wall0 + start - t0, wall0 + (end or t1) - t0)
                       for name, start, end in cb.stages)
        record = CallbackRecord(self.span_name, trace_id, span_id, wall0, wall0 + t1 - t0,
                                stages, attrs, cb.error)
        if self.kept.put(record):  # type: ignore[union-attr]
            wall_s = wall0 * 1e-9
            self.exemplars.append(('callback', took, trace_id, span_id, wall_s))
            for name, start, end in stages:
                self.exemplars.append((name, (end - start) * 1e-9, trace_id, span_id, wall_s))
