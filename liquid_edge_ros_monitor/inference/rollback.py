"""Automatic rollback after a model swap (no ROS): for `window_s` after the swap, the new model is
watched against bounds, and the first breach names the reason to swap back.

Reasons, in the order they are checked:
- `non_finite`: a non-finite output or a failed step (one is enough: the safe command went out);
- `latency`: the callback's p95 since the swap above the latency budget (after `min_samples`);
- `accuracy`: accuracy against fresh ground truth below `min_accuracy`;
- `divergence`: the share of outputs within the shadow tolerance of the previous model's (which
  keeps running as a shadow for the window) below `min_agreement` (0 = off).

The new model starts from a reset state while the previous one kept its own: their first outputs
say more about the state than about the model (the demo model was rolled back for accuracy 0.17 s
after a swap to a copy of itself, before its state had settled). So accuracy and agreement count
only after `min_samples` callbacks (the warm-up; the demo model's held-out accuracy leaves out 200
steps), and are judged once `min_samples` more have been counted.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ..instrument.stats import Accuracy, LatencyRing

REASONS = ('non_finite', 'latency', 'accuracy', 'divergence')


@dataclass(frozen=True)
class RollbackBounds:
    window_s: float             # 0: no automatic rollback
    latency_budget_s: float
    min_accuracy: float
    accuracy_tolerance: float
    min_agreement: float        # 0: divergence not checked
    min_samples: int = 20


class RollbackGuard:
    """The window after one swap: what the new model did, and whether it breached a bound."""

    def __init__(self, bounds: RollbackBounds, started_ns: int) -> None:
        self.bounds = bounds
        self.started_ns = started_ns
        self.latency = LatencyRing(4096)
        self.accuracy = Accuracy(bounds.accuracy_tolerance, 4096)
        self.failures = 0
        self.callbacks = 0

    def open(self, now_ns: int) -> bool:
        return now_ns - self.started_ns <= self.bounds.window_s * 1e9

    def note(self, failed: bool, latency_s: float, y: Optional[np.ndarray] = None,
             truth: Optional[np.ndarray] = None) -> bool:
        """One callback of the new model: whether its step failed or its output was non-finite,
        its latency, and its output against fresh ground truth (when there is some). True once,
        when the warm-up ends (the caller restarts the agreement window then)."""
        if failed:
            self.failures += 1
        self.latency.add(latency_s)
        self.callbacks += 1
        warm = self.callbacks > self.bounds.min_samples
        if warm and y is not None and truth is not None and truth.size == y.size:
            self.accuracy.add(y, truth)
        return self.callbacks == self.bounds.min_samples

    def breach(self, agreement: Any = None) -> Optional[str]:
        """The first bound breached so far, or None. `agreement`: the previous model's agreement
        with the new one since the swap (`stats.Accuracy`), None when it is not running."""
        b = self.bounds
        if self.failures:
            return 'non_finite'
        enough = self.latency.count >= b.min_samples
        if enough:
            p95 = self.latency.quantile(0.95)
            if p95 is not None and p95 > b.latency_budget_s:
                return 'latency'
        acc = self.accuracy.value if self.accuracy.count >= b.min_samples else None
        if acc is not None and acc < b.min_accuracy:
            return 'accuracy'
        agreed = (agreement.value if b.min_agreement > 0 and agreement is not None
                  and agreement.count >= b.min_samples else None)
        if agreed is not None and agreed < b.min_agreement:
            return 'divergence'
        return None
