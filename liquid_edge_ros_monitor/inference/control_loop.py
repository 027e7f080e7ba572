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
stamp (or the node clock's time for a headerless input). The gap threshold is the freshness
timeout.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from ..instrument.freshness import Freshness
from .controller import NON_FINITE_INPUT

#: `step` status: no usable input for longer than the timeout; the command is the stale one.
STALE = 4
#: `on_input_stale` choices.
STALE_POLICIES = ('zero', 'hold', 'stop')


class ControlLoop:
    """Elapsed time, stamp gaps and the stale policy around one `Controller`; input freshness is
    the shared `Freshness` (the monitor reports on the same one).

    The stale command goes out at every control tick from `step` when `repeat_stale` (a control
    rate); without one, whoever listens to `freshness` after this loop sends `stale_command` once
    (liquid_inference does), since the change may be noticed by a timer between inputs.
    """

    def __init__(self, controller: Any, freshness: Freshness, dt0: float, dt_max: float,
                 on_input_stale: str = 'zero', repeat_stale: bool = False) -> None:
        if on_input_stale not in STALE_POLICIES:
            raise ValueError(f"on_input_stale must be one of {', '.join(STALE_POLICIES)}, "
                             f"got '{on_input_stale}'")
        self.controller = controller
        self.freshness = freshness
        self.dt0 = dt0
        self.dt_max = dt_max
        self.on_input_stale = on_input_stale
        self.repeat_stale = repeat_stale
        self.gaps = 0                           # stamp gaps longer than the input timeout
        self.gap = False                        # the latest step followed a gap
        self.last_gap_s: Optional[float] = None
        self.period_ema: Optional[float] = None    # smoothed input period from the stamps
        self.last_dt = dt0                          # the elapsed time of the latest step
        #: The command while stale (None: publish nothing), fixed when the input went stale.
        self.stale_command: Optional[np.ndarray] = None
        self._last_stamp_ns: Optional[int] = None
        self._last_step_ns: Optional[int] = None
        freshness.on_stale(self._go_stale)

    @property
    def stale(self) -> bool:
        return self.freshness.stale

    def swap(self, controller: Any, dt0: float, keep_state: bool = False) -> None:
        """Step `controller` from the next input on (a model swap, between two callbacks): from
        its reset state with the nominal period `dt0`, or, `keep_state` (a rollback to a model
        that kept shadowing), from the state it has."""
        self.controller = controller
        self.dt0 = dt0
        if not keep_state:
            controller.reset()
            self._last_stamp_ns = self._last_step_ns = None

    def _go_stale(self, _age_s: float) -> None:
        """The input went stale: reset the state, forget the last good command (so `hold` on a
        NaN after the outage cannot bring it back), fix the stale command."""
        c = self.controller
        how = self.on_input_stale
        self.stale_command = (None if how == 'stop' else
                              np.array(c.last_good, copy=True) if how == 'hold' else c.zero())
        c.reset()
        c.forget()
        self._last_stamp_ns = self._last_step_ns = None

    # ---- one input -----------------------------------------------------------------------------

    def step(self, x: np.ndarray, stamp_ns: int, arrival_ns: int,
             now_ns: int) -> Tuple[Optional[np.ndarray], int]:
        """Advance on input `x` (features, float32), which arrived at `arrival_ns` (the same input
        may be stepped again at a control tick). Returns (command or None for none, status): the
        controller's status, or `STALE` with the command to publish now (None: nothing)."""
        self.gap = False
        fresh = self.freshness
        if np.isfinite(x).all() and fresh.usable(arrival_ns, now_ns):
            dt = self.last_dt = self._elapsed(stamp_ns, now_ns)
            return self.controller.forward(x, dt)
        fresh.seen(arrival_ns)
        if fresh.check(now_ns):
            return (self.stale_command if self.repeat_stale else None), STALE
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
        if elapsed_ns > self.freshness.timeout_ns:
            self.gap = True
            self.gaps += 1
            self.last_gap_s = elapsed_ns * 1e-9
            self.controller.reset()
            return self.dt0
        dt = min(elapsed_ns * 1e-9, self.dt_max)
        ema = self.period_ema
        self.period_ema = dt if ema is None else ema + 0.01 * (dt - ema)
        return dt
