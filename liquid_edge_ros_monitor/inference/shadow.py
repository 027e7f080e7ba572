"""A shadow model (no ROS): a candidate, or the previous model after a swap, stepping on the active
model's inputs after the command is out, compared and never commanding.

It steps only when its latency fits the share of the control period the node leaves it
(`max_share` of the deadline, after what the callback has used), else it skips the input,
counted: a shadow can slow the control loop by at most that share. Its hidden state follows the
active model's inputs (reset when they reset: an outage, a stamp gap), so its outputs are what it
would have commanded.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from ..instrument.stats import Accuracy, LatencyRing
from .controller import NON_FINITE_OUTPUT, OK, STEP_FAILED

#: Smoothing of the shadow's own step latency (its budget check).
LATENCY_ALPHA = 0.1


class Shadow:
    """One shadow model: its controller, and how it compares with the active model."""

    def __init__(self, role: str, loaded: Any, tolerance: float, window: int,
                 accuracy_tolerance: float) -> None:
        self.role = role                        # 'candidate' or 'previous'
        self.loaded = loaded
        self.controller = loaded.controller
        n = loaded.model.n_outputs
        #: |active - shadow| per output since the last `take_differences`.
        self.differences = [LatencyRing(1024) for _ in range(n)]
        self.agreement = Accuracy(tolerance, window)   # within tolerance of the active output
        self.accuracy = Accuracy(accuracy_tolerance, window)   # against ground truth
        self.latency = LatencyRing()
        self.latency_ema: Optional[float] = None
        self.errors: Dict[str, int] = {'non_finite_output': 0, 'step_failed': 0}
        self.steps = 0
        self.skipped = 0

    def fits(self, used_s: float, deadline_s: Optional[float], max_share: float) -> bool:
        """Whether a step fits in what is left of `max_share` of the deadline after `used_s`."""
        if deadline_s is None:
            return True
        expected = self.latency_ema or 0.0
        return used_s + expected <= max_share * deadline_s

    def step(self, x: np.ndarray, dt: float, active_y: Optional[np.ndarray],
             truth: Optional[np.ndarray], clock: Any) -> None:
        """Step on input `x` with the active model's `dt`; compare with `active_y` (None when the
        active step failed: nothing to compare with) and with `truth`."""
        t0 = clock()
        y, status = self.controller.forward(x, dt)
        took = (clock() - t0) * 1e-9
        self.latency.add(took)
        ema = self.latency_ema
        self.latency_ema = took if ema is None else ema + LATENCY_ALPHA * (took - ema)
        self.steps += 1
        if status == NON_FINITE_OUTPUT:
            self.errors['non_finite_output'] += 1
            return
        if status == STEP_FAILED:
            self.errors['step_failed'] += 1
            return
        assert status == OK, status
        if active_y is None:
            return
        diff = np.abs(np.asarray(y, dtype=np.float64) - active_y)
        for ring, d in zip(self.differences, diff.tolist()):
            ring.add(d)
        self.agreement.add(np.asarray(y, dtype=np.float64), active_y)
        if truth is not None and truth.size == diff.size:
            self.accuracy.add(np.asarray(y, dtype=np.float64), truth)

    def restart_comparison(self) -> None:
        """Forget the agreement so far (the active model's warm-up is over)."""
        self.agreement = Accuracy(self.agreement.tolerance, self.agreement._hits.size)

    def reset(self) -> None:
        """The active model's state was reset (an outage, a gap): the shadow's too."""
        self.controller.reset()
