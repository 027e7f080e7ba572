"""How low `bench/instrument_overhead.py`'s figure can go in Python: the example's callback
instrumented through the same four calls (`callback`, `stage`, `inputs`, `outputs`) by
stand-ins for `InferenceMonitor` that are not the monitor.

    .venv/bin/python bench/instrument_floor.py [--calls 3000] [--rounds 6] [--model torch|numpy]
        [--tensors]

- `empty`: the calls do nothing (a wrapper with try/finally, stages that mark nothing, inputs
  and outputs that return True): what the API's shape costs.
- `marks`: the least bookkeeping the monitor's contract needs of a callback, written flat: two
  clock reads and a ContextVar set/reset around it, a [name, start, end] mark per stage, the
  finished callback handed to a slot; inputs and outputs not read. No freshness, sampling,
  deadline, drift ring or counters, no nested monitors.
- `lean`: `marks`, and inputs and outputs read as the monitor reads them: its own
  `quality.flat_values` (a copy of the example's lists of floats; with `--tensors` the stand-ins
  are given the tensors, read by their `tolist()`), then `math.isfinite` over the list.

`lean` is about what any Python implementation pays; the gap between it and the real monitor
(instrument_overhead.py's `untraced`) is what the monitor's further bookkeeping costs, and the
gap between `marks` and `lean` what reading the values costs, in C or in Python. Cases take
turns call by call, the order rotated each round, as in instrument_overhead.py (whose
callbacks, models and timing loop this reuses).
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
from contextvars import ContextVar
from math import isfinite
from time import monotonic_ns
from typing import Any, Callable, Dict, List

from common import cpu_model
from instrument_overhead import REPO, callbacks, report, time_cases

sys.path.insert(0, str(REPO))
from liquid_edge_ros_monitor.instrument.quality import flat_values  # noqa: E402 - this tree's

#: Hand-off slots, as the monitor's `CallbackRecorder.finished` has.
SLOTS = 2048

_running: ContextVar[Any] = ContextVar('floor_running', default=None)


class _NoStage:
    __slots__ = ()

    def __enter__(self) -> '_NoStage':
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        return False


class _Mark:
    __slots__ = ('name',)

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> '_Mark':
        cb = _running.get()
        if cb is not None:
            cb[2].append([self.name, monotonic_ns(), 0])
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        cb = _running.get()
        if cb is not None:
            mark = cb[2][-1]
            if mark[0] is self.name and mark[2] == 0:
                mark[2] = monotonic_ns()
        return False


def _finite(values: Any) -> bool:
    """The monitor's read of a small input or output (SignalQuality.check_inputs, less its
    fallbacks for large and complex arrays)."""
    return all(map(isfinite, flat_values(values)))


class StandIn:
    """`InferenceMonitor`'s four per-callback calls, doing nothing (`empty`), the least
    bookkeeping (`marks`), or that and reading the values (`lean`); `update()` empties the
    hand-off slots, as the monitor's timer does."""

    def __init__(self, level: str) -> None:
        self.marks = level != 'empty'
        self.reads = level == 'lean'
        self.slots: List[Any] = [None] * SLOTS
        self.total = 0
        self._stages: Dict[str, Any] = {}

    def stage(self, name: str) -> Any:
        s = self._stages.get(name)
        if s is None:
            s = self._stages[name] = _Mark(name) if self.marks else _NoStage()
        return s

    def inputs(self, values: Any) -> bool:
        return _finite(values) if self.reads else True

    def outputs(self, values: Any) -> bool:
        return _finite(values) if self.reads else True

    def callback(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        if not self.marks:
            @functools.wraps(fn)
            def empty(*args: Any, **kwargs: Any) -> Any:
                try:
                    return fn(*args, **kwargs)
                finally:
                    pass
            return empty

        @functools.wraps(fn)
        def marked(*args: Any, **kwargs: Any) -> Any:
            cb = [monotonic_ns(), 0, []]
            token = _running.set(cb)
            try:
                return fn(*args, **kwargs)
            finally:
                cb[1] = monotonic_ns()
                _running.reset(token)
                self.slots[self.total % SLOTS] = cb
                self.total += 1
        return marked

    def update(self) -> None:
        self.slots = [None] * SLOTS


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--calls', type=int, default=3000, help='calls per case per round')
    ap.add_argument('--rounds', type=int, default=6)
    ap.add_argument('--model', choices=('numpy', 'torch'), default='torch')
    ap.add_argument('--tensors', action='store_true',
                    help="report the model's tensors, not the example's floats")
    args = ap.parse_args()
    stand_ins = {level: StandIn(level) for level in ('empty', 'marks', 'lean')}
    cases = callbacks(args.model, stand_ins, tensors=tuple(stand_ins) if args.tensors else ())
    times = time_cases(cases, list(stand_ins.values()), args.calls, args.rounds)
    print(f'{cpu_model()}, {os.cpu_count()} cores; model {args.model}; '
          f'{args.calls} calls x {args.rounds} rounds per case')
    report(times)
    return 0


if __name__ == '__main__':
    sys.exit(main())
