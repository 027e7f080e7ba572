"""Fixed-size statistics of an inference loop (no ROS): latencies, inputs, drift, accuracy.

Everything a callback touches here is a slot write into a preallocated buffer (`LatencyRing.add`,
`InputRing.add`): the arithmetic (quantiles, histogram buckets, the drift score) runs on the
monitor's update timer over the values added since, so an instrumented callback pays microseconds,
not the ~5 us that scoring one input with four numpy calls costs on a 2-core VM.
"""
from __future__ import annotations

from typing import Any, List, Optional, Union

import numpy as np
from numpy.typing import ArrayLike


class LatencyRing:
    """The last `size` latencies (seconds) for quantiles, and the ones added since `take_new`.

    A Python list, not a numpy array: `add` runs in every instrumented callback, and a list slot
    write costs 10 ns against 40 ns for a numpy scalar write (2-core VM)."""

    __slots__ = ('_buf', '_size', '_total', '_taken')

    def __init__(self, size: int = 2048) -> None:
        self._buf = [0.0] * size
        self._size = size
        self._total = 0
        self._taken = 0

    def add(self, seconds: float) -> None:
        self._buf[self._total % self._size] = seconds
        self._total += 1

    def take_new(self) -> np.ndarray:
        """Latencies added since the last call (at most one ring), oldest first."""
        total = self._total
        n = min(total - self._taken, self._size)
        self._taken = total
        if n <= 0:
            return np.zeros(0)
        start = (total - n) % self._size
        end = start + n
        if end <= self._size:
            return np.array(self._buf[start:end])
        return np.array(self._buf[start:] + self._buf[:end - self._size])

    def quantile(self, q: float) -> Optional[float]:
        n = min(self._total, self._size)
        if n == 0:
            return None
        return float(np.quantile(np.asarray(self._buf[:n]), q))

    @property
    def count(self) -> int:
        return self._total


class Handoff:
    """Objects a hot path hands to a timer: `put` is one slot write, `take` (on the timer) returns
    those put since the last take, oldest first, and empties their slots.

    Emptying on the timer is the point: `put` then writes into an empty slot. Over an object a
    ring old, it would free that object (a list and its floats, or a finished callback with its
    stage marks), long out of the caches after the model ran: about 3 us of the example's torch
    callback for the inputs alone (ablation, 2-core VM). At most `size` are held between two
    takes; beyond, the oldest are overwritten (a timer that far behind has lost them anyway)."""

    __slots__ = ('_slots', '_size', '_total', '_taken')

    def __init__(self, size: int) -> None:
        self._slots: List[Any] = [None] * size
        self._size = size
        self._total = 0
        self._taken = 0

    def put(self, x: Any) -> None:
        self._slots[self._total % self._size] = x
        self._total += 1

    def take(self) -> List[Any]:
        total = self._total
        n = min(total - self._taken, self._size)
        self._taken = total
        if n <= 0:
            return []
        slots, size = self._slots, self._size
        start = (total - n) % size
        end = start + n
        if end <= size:
            out = slots[start:end]
            slots[start:end] = [None] * n
        else:
            out = slots[start:] + slots[:end - size]
            slots[start:] = [None] * (size - start)
            slots[:end - size] = [None] * (end - size)
        return out


class InputRing(Handoff):
    """The input vectors added since `take_new`, of one width (a `Handoff`).

    The width is learnt from the first vector; a vector of another width is not kept (counted in
    `mismatched`), since drift against training statistics needs one layout. Rows are kept as
    given: a small input comes as a list of Python floats the ring may keep
    (`quality.flat_values` made it), so adding it is one slot write; a large one, an array, is
    copied. They become one array in `take_new`, on the update timer."""

    __slots__ = ('width', 'mismatched')

    def __init__(self, size: int = 1024) -> None:
        super().__init__(size)
        self.width: Optional[int] = None
        self.mismatched = 0

    def add(self, x: Union[List[float], np.ndarray]) -> None:
        """Keep flat vector `x`: a list the caller no longer changes, or an array (copied)."""
        n = len(x)
        if self.width is None:
            self.width = n
        elif n != self.width:
            self.mismatched += 1
            return
        # `put`, inlined: this runs in every callback.
        self._slots[self._total % self._size] = x if type(x) is list else np.array(x, np.float64)
        self._total += 1

    def take_new(self) -> np.ndarray:
        """Rows added since the last call, oldest first (at most one ring), as float64."""
        rows = self.take()
        if not rows:
            return np.zeros((0, self.width or 0))
        return np.array(rows, dtype=np.float64).reshape(len(rows), -1)


class DriftScore:
    """Exponential average of the mean |z-score| of the inputs against the training statistics.

    About 0.8 for inputs like the training data (E|z| of a normal variable); grows as they drift.
    `add` takes one input, `add_many` a batch in order with the same result (the average's
    recursion written as one weighted sum).
    """

    def __init__(self, mean: Optional[ArrayLike], std: Optional[ArrayLike], window: int) -> None:
        self.available = mean is not None and std is not None
        self._mean = np.asarray(mean if mean is not None else 0.0, dtype=np.float64)
        std_arr = np.asarray(std if std is not None else 1.0, dtype=np.float64)
        self._inv_std = 1.0 / np.where(std_arr > 0, std_arr, 1.0)
        self._alpha = 1.0 / window
        self.value: Optional[float] = None

    def add(self, x: np.ndarray) -> None:
        if not self.available:
            return
        z = float(np.abs((x - self._mean) * self._inv_std).mean())
        self.value = z if self.value is None else self.value + self._alpha * (z - self.value)

    def add_many(self, rows: np.ndarray) -> None:
        """Score the rows (inputs, oldest first) as `add` would one by one."""
        if not self.available or rows.shape[0] == 0:
            return
        if rows.shape[1] != self._mean.size and self._mean.size != 1:
            return                  # not the model's input layout: no score rather than a wrong one
        z = np.abs((rows - self._mean) * self._inv_std).mean(axis=1)
        if self.value is None:
            self.value, z = float(z[0]), z[1:]
            if z.size == 0:
                return
        a = self._alpha
        keep = (1.0 - a) ** np.arange(z.size - 1, -1, -1)    # (1-a)^(N-k), k = 1..N
        self.value = float((1.0 - a) ** z.size * self.value + a * np.dot(keep, z))


class Accuracy:
    """Share of the last `window` outputs within `tolerance` of the truth, on every output."""

    def __init__(self, tolerance: float, window: int) -> None:
        self.tolerance = tolerance
        self._hits = np.zeros(window, dtype=bool)
        self._n = 0
        self._i = 0

    def add(self, y: ArrayLike, truth: np.ndarray) -> None:
        self._hits[self._i] = bool((np.abs(truth - y) <= self.tolerance).all())
        self._i = (self._i + 1) % self._hits.size
        self._n = min(self._n + 1, self._hits.size)

    @property
    def value(self) -> Optional[float]:
        return None if self._n == 0 else float(self._hits[:self._n].mean())

    @property
    def count(self) -> int:
        return self._n


class LogThrottle:
    """At most one log line per `interval_s`; the lines held back are counted and told with the next.
    A fault that repeats per message (a non-finite output at 200 Hz) must not flood the log."""

    def __init__(self, interval_s: float = 10.0) -> None:
        self.interval_s = interval_s
        self._next = float('-inf')
        self.suppressed = 0

    def allow(self, now: float) -> Optional[int]:
        """None: hold this line back. Else log it, with this many similar lines held back before."""
        if now < self._next:
            self.suppressed += 1
            return None
        self._next = now + self.interval_s
        n, self.suppressed = self.suppressed, 0
        return n
