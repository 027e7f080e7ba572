"""The controller's fail-safe loop (no ROS): when the network steps, with what elapsed time, and
what is commanded when the input cannot be trusted.

A controller must never act on input it no longer has. Three rules, each from a measured failure
of the version before this module (issue 17):

- **Usable input** is input whose features are finite and that arrived within `input_timeout`.
  Only usable input keeps the loop fresh: a sensor that fails to NaN but keeps publishing is an
  outage, not fresh input (with `on_non_finite: hold` it used to repeat the last good command for
  as long as the NaNs came: 146 of 146 commands, 1.5-3 s into the fault, still moved the robot).
- **Stale**: after `input_timeout` without usable input the state is reset, the last good command
  is forgotten (so a NaN just after the outage cannot bring the pre-outage command back: 29 of 29
  did), and the `on_input_stale` command goes out: at every tick with a control rate, else once.
- **Gap**: an elapsed time between two stamps longer than `input_timeout` (an NTP step on the
  sensor host, a second publisher on another clock) is not integrated as one giant step (200
  nominal periods of the demo model, published as OK): the state is reset as after an outage and
  the step gets the nominal period.

Times are integers: `arrival_ns`/`now_ns` on a monotonic clock, `stamp_ns` the input's header
stamp (or the node clock's time for a headerless input).
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

import numpy as np

from .controller import NON_FINITE_INPUT

#: `step` status: no usable input for longer than `input_timeout`; the command is the stale one.
STALE = 4
#: `on_input_stale` choices.
STALE_POLICIES = ('zero', 'hold', 'stop')


class ControlLoop:
    """Input freshness, elapsed time and the stale policy around one `Controller`."""

    def __init__(self, controller: Any, input_timeout_s: float, dt0: float, dt_max: float,
                 on_input_stale: str = 'zero', repeat_stale: bool = False) -> None:
        if on_input_stale not in STALE_POLICIES:
            raise ValueError(f"on_input_stale must be one of {', '.join(STALE_POLICIES)}, "
                             f"got '{on_input_stale}'")
        self.controller = controller
        self.timeout_ns = int(input_timeout_s * 1e9)
        self.dt0 = dt0
        self.dt_max = dt_max
        self.on_input_stale = on_input_stale
        #: With a control rate the stale command goes out at every tick; without one, once.
        self.repeat_stale = repeat_stale
        self.stale = False
        self.episodes = 0                       # times the input went stale
        self.gaps = 0                           # stamp gaps longer than input_timeout
        self.gap = False                        # the latest step followed a gap
        self.last_gap_s: Optional[float] = None
        self.period_ema: Optional[float] = None    # smoothed input period from the stamps
        #: Called with the age (s) when the input goes stale, and when usable input is back.
        self.on_stale: Callable[[float], None] = lambda _age: None
        self.on_back: Callable[[], None] = lambda: None
        self._usable_ns: Optional[int] = None   # latest usable input's arrival (first input's
        self._arrival_ns: Optional[int] = None  # until one is usable); latest input's arrival
        self._last_stamp_ns: Optional[int] = None
        self._last_step_ns: Optional[int] = None
        self._stale_command: Optional[np.ndarray] = None

    # ---- freshness -----------------------------------------------------------------------------

    def input_age_s(self, now_ns: int) -> Optional[float]:
        """Seconds since the latest usable input (since the first input while none was usable);
        None before any input."""
        return None if self._usable_ns is None else (now_ns - self._usable_ns) * 1e-9

    def arrival_age_s(self, now_ns: int) -> Optional[float]:
        """Seconds since the latest input of any kind arrived (None before the first)."""
        return None if self._arrival_ns is None else (now_ns - self._arrival_ns) * 1e-9

    def watch(self, now_ns: int) -> Tuple[bool, Optional[np.ndarray]]:
        """(stale, command to publish now or None). For a timer: the control tick, or a watchdog
        without a control rate. On the change to stale: state reset, last good command
        forgotten, `on_stale` called."""
        usable = self._usable_ns
        if usable is None or now_ns - usable <= self.timeout_ns:
            return False, None
        if not self.stale:
            self._go_stale(now_ns - usable)
            return True, self._stale_command
        return True, (self._stale_command if self.repeat_stale else None)

    def _go_stale(self, age_ns: int) -> None:
        c = self.controller
        how = self.on_input_stale
        self._stale_command = (None if how == 'stop' else
                               np.array(c.last_good, copy=True) if how == 'hold' else c.zero())
        self.stale = True
        self.episodes += 1
        c.reset()
        c.forget()
        self._last_stamp_ns = self._last_step_ns = None
        self.on_stale(age_ns * 1e-9)

    # ---- one input -----------------------------------------------------------------------------

    def step(self, x: np.ndarray, stamp_ns: int, arrival_ns: int,
             now_ns: int) -> Tuple[Optional[np.ndarray], int]:
        """Advance on input `x` (features, float32), which arrived at `arrival_ns` (the same input
        may be stepped again at a control tick). Returns (command or None for none, status): the
        controller's status, or `STALE` with the stale command (None: publish nothing)."""
        self.gap = False
        if self._usable_ns is None:
            self._usable_ns = arrival_ns     # staleness is counted from the first input
        if self._arrival_ns is None or arrival_ns > self._arrival_ns:
            self._arrival_ns = arrival_ns
        if now_ns - arrival_ns <= self.timeout_ns and np.isfinite(x).all():
            if arrival_ns > self._usable_ns:
                self._usable_ns = arrival_ns
            if self.stale:
                self.stale = False
                self.on_back()
            return self.controller.forward(x, self._elapsed(stamp_ns, now_ns))
        stale, command = self.watch(now_ns)
        if stale:
            return command, STALE
        # Non-finite, not yet stale: not fed to the network; the state is kept.
        return self.controller.safe(), NON_FINITE_INPUT

    def _elapsed(self, stamp_ns: int, now_ns: int) -> float:
        """Seconds since the previous step's input, from the stamps, clipped to (0, dt_max]; the
        first step after a start, an outage or a gap gets the nominal period. An input stepped
        again (control rate above the input rate) or a stamp that went back gets the time that
        really passed since the previous step."""
        last, self._last_stamp_ns = self._last_stamp_ns, stamp_ns
        last_step, self._last_step_ns = self._last_step_ns, now_ns
        if last is None or last_step is None:
            return self.dt0
        if stamp_ns <= last:
            return min(max((now_ns - last_step) * 1e-9, 1e-6), self.dt_max)
        elapsed_ns = stamp_ns - last
        if elapsed_ns > self.timeout_ns:
            self.gap = True
            self.gaps += 1
            self.last_gap_s = elapsed_ns * 1e-9
            self.controller.reset()
            return self.dt0
        dt = min(elapsed_ns * 1e-9, self.dt_max)
        ema = self.period_ema
        self.period_ema = dt if ema is None else ema + 0.01 * (dt - ema)
        return dt
