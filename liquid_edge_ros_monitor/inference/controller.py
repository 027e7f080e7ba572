"""The inference node's pure core: a guarded controller step and the statistics around it (no ROS).

`Controller` owns the hidden state and never hands out a non-finite command: a NaN/Inf input is
not fed to the network (the state stays as it was), a NaN/Inf output or a step that raises resets
the state and yields the safe command (zeros, or the last good command). `DriftScore`, `Accuracy`
and `LatencyRing` are fixed-size and allocation-free per sample, since they run in the control
callback. `input_timeout` and `LogThrottle` are the small policies the node applies around them.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

OK, NON_FINITE_INPUT, NON_FINITE_OUTPUT, STEP_FAILED = 0, 1, 2, 3

#: Input timeout when neither dt_default nor the model tells the input period.
UNKNOWN_PERIOD_TIMEOUT_S = 1.0
#: Input periods of silence before an input is stale (the default timeout), and its floor.
TIMEOUT_PERIODS, MIN_TIMEOUT_S = 10, 0.1


def expected_period(model: Any, dt_default: float) -> Optional[float]:
    """The input period the network expects: the parameter, else the training period, else None."""
    if dt_default > 0:
        return dt_default
    training = getattr(model, 'training', None) or {}
    for key in ('dt', 'nominal_dt', 'dt_s'):
        v = training.get(key)
        if isinstance(v, (int, float)) and v > 0:
            return float(v)
    return None


def nominal_dt(model: Any, dt_default: float) -> float:
    """The elapsed time of a first step: the parameter, else the training period, else ncps's 1.0."""
    period = expected_period(model, dt_default)
    return 1.0 if period is None else period


def input_timeout(timeout: float, model: Any, dt_default: float) -> float:
    """Seconds without input after which the controller stops acting on it: the parameter if set,
    else 10 expected input periods (at least 0.1 s, so scheduling jitter is no outage), else 1 s.
    A fixed 1 s when the period is unknown: ncps's nominal 1.0 is a unit, not an input rate."""
    if timeout > 0:
        return timeout
    period = expected_period(model, dt_default)
    if period is None:
        return UNKNOWN_PERIOD_TIMEOUT_S
    return max(TIMEOUT_PERIODS * period, MIN_TIMEOUT_S)


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
        self.last_error: Optional[BaseException] = None

    def warm_up(self, dt: float) -> None:
        """Compile the step (fixed shapes, so once) and run it twice; the state is left at zero."""
        x = np.zeros(self.model.n_inputs, dtype=np.float32)
        for _ in range(2):
            h, y = self._step(self.model.init_state(), x, np.float32(dt))
            np.asarray(y)
        self.h = self.model.init_state()

    def forward(self, x: np.ndarray, dt: float) -> Tuple[np.ndarray, int]:
        """Advance one input; return (command, OK | NON_FINITE_INPUT | NON_FINITE_OUTPUT |
        STEP_FAILED). A step that raises (an XLA runtime error, a device lost) is caught here:
        the state it may have left half-made is reset and the caller gets the safe command;
        the exception is kept in `last_error` for the report."""
        if not np.isfinite(x).all():
            return self.safe(), NON_FINITE_INPUT
        try:
            h, y = self._step(self.h, x, np.float32(dt))
            y = np.asarray(y)
        except Exception as exc:            # noqa: BLE001 - any failure of the step is one outcome
            self.last_error = exc
            self.reset()
            return self.safe(), STEP_FAILED
        if not np.isfinite(y).all():
            self.reset()
            return self.safe(), NON_FINITE_OUTPUT
        self.h = h
        self.last_good = y
        return y, OK

    def safe(self) -> np.ndarray:
        return self.last_good if self.hold else self._zeros

    def zero(self) -> np.ndarray:
        return self._zeros

    def reset(self) -> None:
        self.h = self.model.init_state()
        self.resets += 1

    def forget(self) -> None:
        """Drop the last good command (the input went stale): `hold` then holds zeros until the
        network gives a good command on new input."""
        self.last_good = self._zeros

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
