"""Kept callbacks become spans off the callback's thread.

The instrumented callback hands a compact `CallbackRecord` (ids, wall-clock start and end, its
stages' marks, the root's attributes) to `KeptTraces.put`: one deque append. A background thread
turns each record into a span tree (the root named after the callback, one child per stage, at
their real times) as the SDK's own `ReadableSpan`s and hands them to the SDK's batch processor,
which batches and exports them with the standard OTLP exporter (so every `OTEL_EXPORTER_OTLP_*`
setting still applies). Starting and ending four SDK spans on the control thread cost ~80 us per
traced callback on a 2-core VM; this path costs the callback about a microsecond.

Why not the SDK's tracer: it creates span objects, locks and contexts while the work runs, which is
the cost a control loop cannot pay; and a tail-sampled trace is only known to be wanted after the
work is done, when its timestamps are all there is. Both ends are standard: the records become
ordinary SDK spans, and the batch processor and exporter are the SDK's.

Memory is bounded: at most `max_pending` records wait here, and a record is not converted while
the batch processor's (bounded) queue has no room for its spans; both are counted in `dropped`.
"""
from __future__ import annotations

import random
import threading
import time
from collections import deque
from typing import Any, Deque, Dict, NamedTuple, Optional, Tuple

#: Stages one record may carry (a callback's children); more are not made into spans.
MAX_STAGES = 16


class CallbackRecord(NamedTuple):
    """One kept callback: what the spans need and nothing else."""

    name: str                          # the root span's name
    trace_id: int
    span_id: int
    start_ns: int                      # wall clock, ns
    end_ns: int
    stages: Tuple[Tuple[str, int, int], ...]   # (name, start ns, end ns), wall clock
    attributes: Dict[str, Any]         # the root span's
    error: Optional[str]               # the error reason, if the callback failed


def new_ids(rnd: Any = random.getrandbits) -> Tuple[int, int]:
    """A trace id (128 bits) and a span id (64 bits), never zero (W3C trace context)."""
    return rnd(128) or 1, rnd(64) or 1


class KeptTraces:
    """A bounded hand-over from the control thread to the SDK's batch processor."""

    def __init__(self, processor: Any, resource: Any, scope: Any, max_pending: int = 512,
                 interval_s: float = 0.2) -> None:
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
        self._span = ReadableSpan
        self._context = SpanContext
        self._kind = SpanKind.INTERNAL
        self._ok = Status(StatusCode.UNSET)
        self._error_status = lambda reason: Status(StatusCode.ERROR, reason)
        self._flags = TraceFlags(TraceFlags.SAMPLED)
        self._processor = processor
        self._room = getattr(processor, 'room', lambda: 1 << 30)
        self._resource = resource
        self._scope = scope
        self._pending: Deque[CallbackRecord] = deque()
        self.max_pending = max_pending
        self.dropped = 0
        self._interval_s = interval_s
        self._wake = threading.Event()
        self._stop = False
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._run, name='kept-traces', daemon=True)
        self._thread.start()

    def put(self, record: CallbackRecord) -> bool:
        """Control thread: queue a kept callback; False (and counted) when the queue is full."""
        if len(self._pending) >= self.max_pending:
            self.dropped += 1
            return False
        self._pending.append(record)
        return True

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self._interval_s)
            self._wake.clear()
            self._drain()

    def _drain(self) -> None:
        pending = self._pending
        self._idle.clear()
        try:
            while pending:
                self._emit(pending.popleft())
                # Hand the interpreter back between records, so the control thread never waits
                # for a whole batch's conversion (the GIL switch interval is 5 ms).
                time.sleep(0)
        finally:
            self._idle.set()

    def _emit(self, r: CallbackRecord) -> None:
        if self._room() < 1 + len(r.stages):
            # The exporter is behind (collector slow or dead): count it, and spend nothing on
            # spans the batch processor would drop.
            self.dropped += 1
            return
        ctx = self._context(r.trace_id, r.span_id, is_remote=False, trace_flags=self._flags)
        root = self._span(r.name, context=ctx, parent=None, resource=self._resource,
                          attributes=r.attributes, kind=self._kind,
                          status=self._error_status(r.error) if r.error else self._ok,
                          start_time=r.start_ns, end_time=r.end_ns,
                          instrumentation_scope=self._scope)
        # Children first, as a tracer would end them.
        for name, start, end in r.stages[:MAX_STAGES]:
            child = self._context(r.trace_id, random.getrandbits(64) or 1, is_remote=False,
                                  trace_flags=self._flags)
            self._processor.on_end(self._span(
                name, context=child, parent=ctx, resource=self._resource, attributes={},
                kind=self._kind, status=self._ok, start_time=start, end_time=end,
                instrumentation_scope=self._scope))
        self._processor.on_end(root)

    def flush(self, timeout_s: float) -> bool:
        """Convert everything pending now, on the calling thread (the worker may help); True if
        done, the worker's current record included, within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        pending = self._pending
        while pending:
            try:
                record = pending.popleft()
            except IndexError:      # the worker took the last one
                break
            self._emit(record)
            if time.monotonic() > deadline:
                return False
        return self._idle.wait(max(0.0, deadline - time.monotonic()))

    def close(self, timeout_s: float) -> bool:
        """Convert what is pending (bounded) and stop the thread."""
        done = self.flush(timeout_s)
        self._stop = True
        self._wake.set()
        self._thread.join(max(0.0, timeout_s))
        return done
