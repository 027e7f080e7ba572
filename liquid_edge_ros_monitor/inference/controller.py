"""The inference node's pure core: a guarded controller step and the statistics around it (no ROS).

`Controller` owns the hidden state and never hands out a non-finite command: a NaN/Inf input is
not fed to the network (the state stays as it was), a NaN/Inf output resets the state and yields
the safe command (zeros, or the last good command). `DriftScore`, `Accuracy` and `LatencyRing`
are fixed-size and allocation-free per sample, since they run in the control callback.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

OK, NON_FINITE_INPUT, NON_FINITE_OUTPUT = 0, 1, 2


def nominal_dt(model: Any, dt_default: float) -> float:
    """The elapsed time of a first step: the parameter, else the training period, else ncps's 1.0."""
    if dt_default > 0:
        return dt_default
    training = getattr(model, 'training', None) or {}
    for key in ('dt', 'nominal_dt', 'dt_s'):
        v = training.get(key)
        if isinstance(v, (int, float)) and v > 0:
            return float(v)
    return 1.0


class Controller:
    """One network, its hidden state and the last good command."""

    def __init__(self, model: Any, hold_on_non_finite: bool = False) -> None:
        self.model = model
        self._step = model.bound_step()
        self.h = model.init_state()
        self.hold = hold_on_non_finite
        self.last_good = np.zeros(model.n_outputs, dtype=np.float32)
        self._zeros = np.zeros(model.n_outputs, dtype=np.float32)
        self.resets = 0

    def warm_up(self, dt: float) -> None:
        """Compile the step (fixed shapes, so once) and run it twice; the state is left at zero."""
        x = np.zeros(self.model.n_inputs, dtype=np.float32)
        for _ in range(2):
            h, y = self._step(self.model.init_state(), x, np.float32(dt))
            np.asarray(y)
        self.h = self.model.init_state()

    def forward(self, x: np.ndarray, dt: float) -> Tuple[np.ndarray, int]:
        """Advance one input; return (command, OK | NON_FINITE_INPUT | NON_FINITE_OUTPUT)."""
        if not np.isfinite(x).all():
            return self.safe(), NON_FINITE_INPUT
        h, y = self._step(self.h, x, np.float32(dt))
        y = np.asarray(y)
        if not np.isfinite(y).all():
            self.reset()
            return self.safe(), NON_FINITE_OUTPUT
        self.h = h
        self.last_good = y
        return y, OK

    def safe(self) -> np.ndarray:
        return self.last_good if self.hold else self._zeros

    def reset(self) -> None:
        self.h = self.model.init_state()
        self.resets += 1

    def state_norm(self) -> float:
        return float(np.linalg.norm(np.asarray(self.h)))


class DriftScore:
    """Exponential average of the mean |z-score| of the inputs against the training statistics.

    About 0.8 for inputs like the training data (E|z| of a normal variable); grows as they drift.
    """

    def __init__(self, mean: Optional[np.ndarray], std: Optional[np.ndarray], window: int) -> None:
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


class Accuracy:
    """Share of the last `window` outputs within `tolerance` of the truth, on every output."""

    def __init__(self, tolerance: float, window: int) -> None:
        self.tolerance = tolerance
        self._hits = np.zeros(window, dtype=bool)
        self._n = 0
        self._i = 0

    def add(self, y: np.ndarray, truth: np.ndarray) -> None:
        self._hits[self._i] = bool((np.abs(y - truth) <= self.tolerance).all())
        self._i = (self._i + 1) % self._hits.size
        self._n = min(self._n + 1, self._hits.size)

    @property
    def value(self) -> Optional[float]:
        return None if self._n == 0 else float(self._hits[:self._n].mean())

    @property
    def count(self) -> int:
        return self._n


class LatencyRing:
    """The last `size` latencies (seconds) for quantiles, and the ones added since `take_new`."""

    def __init__(self, size: int = 2048) -> None:
        self._buf = np.zeros(size, dtype=np.float64)
        self._total = 0
        self._taken = 0

    def add(self, seconds: float) -> None:
        self._buf[self._total % self._buf.size] = seconds
        self._total += 1

    def take_new(self) -> np.ndarray:
        """Latencies added since the last call (at most one ring), for histogram buckets."""
        total = self._total
        n = min(total - self._taken, self._buf.size)
        self._taken = total
        if n <= 0:
            return self._buf[:0].copy()
        idx = (np.arange(total - n, total)) % self._buf.size
        return self._buf[idx]

    def quantile(self, q: float) -> Optional[float]:
        n = min(self._total, self._buf.size)
        if n == 0:
            return None
        return float(np.quantile(self._buf[:n], q))

    @property
    def count(self) -> int:
        return self._total
