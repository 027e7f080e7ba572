"""Whether an inference loop still has usable input (no ROS).

Usable input is input the node judged good (finite features) that arrived within `timeout`: a
sensor that fails to NaN but keeps publishing is an outage, not fresh input. The clock starts at
the first input of any kind. Times are monotonic nanoseconds.

One `Freshness` per monitored loop, shared by whoever acts on it: the monitor reports (ERROR
status, counter, log) and runs the user's hooks; liquid_inference's control loop resets its state
and sends its stale command. Listeners are called on the change, in the order they were added, by
whichever caller noticed it first (a timer, or the next input).
"""
from __future__ import annotations

from typing import Callable, List, Optional


class Freshness:
    """Tracks the latest usable input against a timeout and tells listeners when it goes stale and
    when usable input is back."""

    __slots__ = ('timeout_s', 'timeout_ns', 'stale', 'episodes', '_usable_ns', '_arrival_ns',
                 '_on_stale', '_on_back')

    def __init__(self, timeout_s: float) -> None:
        if not timeout_s > 0:
            raise ValueError(f'input timeout must be > 0 s, got {timeout_s}')
        self.timeout_s = timeout_s
        self.timeout_ns = int(timeout_s * 1e9)
        self.stale = False
        self.episodes = 0                       # times the input went stale
        self._usable_ns: Optional[int] = None   # latest usable arrival (first input's until then)
        self._arrival_ns: Optional[int] = None  # latest arrival of any input
        self._on_stale: List[Callable[[float], None]] = []
        self._on_back: List[Callable[[], None]] = []

    def on_stale(self, listener: Callable[[float], None]) -> None:
        """Call `listener(age_s)` each time the input goes stale."""
        self._on_stale.append(listener)

    def on_back(self, listener: Callable[[], None]) -> None:
        """Call `listener()` each time usable input comes back after an outage."""
        self._on_back.append(listener)

    def seen(self, arrival_ns: int) -> None:
        """An input arrived, usable or not (the first one starts the clock)."""
        if self._usable_ns is None:
            self._usable_ns = arrival_ns
        if self._arrival_ns is None or arrival_ns > self._arrival_ns:
            self._arrival_ns = arrival_ns

    def usable(self, arrival_ns: int, now_ns: int) -> bool:
        """A good input that arrived at `arrival_ns`: True, and the loop is fresh, when it arrived
        within the timeout; False (it is no evidence of a live sensor) otherwise."""
        # `seen`, inlined: this runs in every callback.
        if self._usable_ns is None:
            self._usable_ns = arrival_ns
        last = self._arrival_ns
        if last is None or arrival_ns > last:
            self._arrival_ns = arrival_ns
        if now_ns - arrival_ns > self.timeout_ns:
            return False
        if arrival_ns > self._usable_ns:  # type: ignore[operator]  # seen() set it
            self._usable_ns = arrival_ns
        if self.stale:
            self.stale = False
            for listener in self._on_back:
                listener()
        return True

    def check(self, now_ns: int) -> bool:
        """Whether the input is stale now; on the change, the stale listeners run."""
        usable = self._usable_ns
        if usable is None or now_ns - usable <= self.timeout_ns:
            return False
        if not self.stale:
            self.stale = True
            self.episodes += 1
            for listener in self._on_stale:
                listener((now_ns - usable) * 1e-9)
        return True

    def input_age_s(self, now_ns: int) -> Optional[float]:
        """Seconds since the latest usable input (since the first input while none was usable);
        None before any input."""
        return None if self._usable_ns is None else (now_ns - self._usable_ns) * 1e-9

    def arrival_age_s(self, now_ns: int) -> Optional[float]:
        """Seconds since any input last arrived (None before the first)."""
        return None if self._arrival_ns is None else (now_ns - self._arrival_ns) * 1e-9
