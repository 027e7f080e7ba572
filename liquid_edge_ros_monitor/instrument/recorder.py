"""Instrumented callbacks, one at a time (no ROS): their timing and stages, whether they failed,
and whether their trace is kept.

`begin` and `end` bracket the user's callback; `stage(name)` marks a part of it. A callback whose
trace is not kept costs a few monotonic clock reads, a ContextVar set and reset, and slot writes
into preallocated rings (`stats.LatencyRing`); a kept one also builds one `CallbackRecord` that a
background thread turns into spans (`trace_export`). Histograms, quantiles and exemplars are made
from the rings on the monitor's update timer.

The callback's trace id is chosen up front (when tracing is on) so that log lines written while it
runs carry it (`core.jsonlog.trace_ids`), whether or not the trace is then kept.
"""
from __future__ import annotations

import time
from collections import deque
from contextvars import ContextVar
from typing import Any, Deque, Dict, List, Optional, Sequence, Tuple

from ..core.jsonlog import trace_ids
from ..core.msg_info import sequence_number
from .freshness import Freshness
from .stats import LatencyRing
from .tail_sampling import TailSampler
from .trace_export import MAX_STAGES, CallbackRecord, KeptTraces, new_ids

#: Smoothing of the interval between callbacks (the deadline when none is configured).
INTERVAL_ALPHA = 0.01


class ActiveCallback:
    """The callback being run: its start, stages, first error, and what was reported of it."""

    __slots__ = ('t0', 'wall0', 'ids', 'stages', 'error', 'inputs_seen', 'skipped', '_tokens')

    def __init__(self, t0: int, wall0: int, ids: Optional[Tuple[int, int]]) -> None:
        self.t0 = t0                      # monotonic ns
        self.wall0 = wall0                # wall clock ns at t0 (0 when not traced)
        self.ids = ids                    # (trace id, span id) when tracing is on
        self.stages: List[list] = []      # [name, start ns, end ns] (monotonic)
        self.error: Optional[str] = None
        self.inputs_seen = False
        self.skipped = False


class Stage:
    """`with monitor.stage('forward'):` marks one stage of the active callback (reusable, one per
    name, so entering it allocates only the stage's mark)."""

    __slots__ = ('name', '_active')

    def __init__(self, name: str, active: ContextVar) -> None:
        self.name = name
        self._active = active

    def __enter__(self) -> 'Stage':
        cb = self._active.get()
        if cb is not None:
            cb.stages.append([self.name, time.monotonic_ns(), 0])
        return self

    def __exit__(self, *_exc: Any) -> bool:
        cb = self._active.get()
        if cb is not None:
            t = time.monotonic_ns()
            for mark in reversed(cb.stages):        # the last one, unless stages nest
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
        if stamp is not None:
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
        self.active: ContextVar[Optional[ActiveCallback]] = ContextVar(
            f'liquid_edge_active_callback_{id(self)}', default=None)
        self.callback = LatencyRing()
        self.stage_rings: Dict[str, LatencyRing] = {}
        self._stages: Dict[str, Stage] = {}
        self._last_t0: Optional[int] = None
        #: Kept callbacks' (stage, seconds, trace id, span id, wall s): the histograms' exemplars.
        self.exemplars: Deque[Tuple[str, float, int, int, float]] = deque(maxlen=64)

    def stage(self, name: str) -> Stage:
        s = self._stages.get(name)
        if s is None:
            s = self._stages[name] = Stage(name, self.active)
        return s

    def deadline(self) -> Optional[float]:
        return self.deadline_s or self.interval_ema

    # ---- one callback --------------------------------------------------------------------------

    def begin(self) -> ActiveCallback:
        t0 = time.monotonic_ns()
        last, self._last_t0 = self._last_t0, t0
        if last is not None and not self.deadline_s:
            interval = (t0 - last) * 1e-9
            ema = self.interval_ema
            self.interval_ema = interval if ema is None else ema + INTERVAL_ALPHA * (interval - ema)
        if self.kept is None:
            cb = ActiveCallback(t0, 0, None)
        else:
            cb = ActiveCallback(t0, time.time_ns(), new_ids())
        cb._tokens = (self.active.set(cb),
                      trace_ids.set(cb.ids) if cb.ids is not None else None)
        return cb

    def current(self) -> Optional[ActiveCallback]:
        return self.active.get()

    def mark_error(self, reason: str) -> None:
        """The active callback failed (its first reason is the one traced)."""
        cb = self.active.get()
        if cb is not None and cb.error is None:
            cb.error = reason

    def end(self, cb: ActiveCallback, args: Sequence[Any]) -> None:
        """After the callback (also when it raised): time it, count it, keep its trace or not."""
        t1 = time.monotonic_ns()
        active_token, ids_token = cb._tokens
        if ids_token is not None:
            trace_ids.reset(ids_token)
        self.active.reset(active_token)
        if cb.skipped:
            return
        t0 = cb.t0
        took = (t1 - t0) * 1e-9
        self.callback.add(took)
        for name, start, end in cb.stages:
            ring = self.stage_rings.get(name)
            if ring is None:
                if len(self.stage_rings) >= MAX_STAGES:
                    continue
                ring = self.stage_rings[name] = LatencyRing()
            ring.add(((end or t1) - start) * 1e-9)
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

    def _keep(self, cb: ActiveCallback, t1: int, took: float, reason: str,
              args: Sequence[Any]) -> None:
        t0, wall0 = cb.t0, cb.wall0
        trace_id, span_id = cb.ids  # type: ignore[misc]
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
