"""The inference node's guarded network step (no ROS).

`Controller` owns the hidden state and never hands out a non-finite command: a NaN/Inf input is
not fed to the network (the state stays as it was), a NaN/Inf output or a step that raises resets
the state and yields the safe command (zeros, or the last good command). `nominal_dt` and
`input_timeout` are the model-derived defaults the control loop (`control_loop.py`) runs with.
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
        # One program per architecture, the weights an argument: a swap to retrained weights
        # compiles nothing (lnn/packed.py).
        self._step, self._packed = model.packed_step()
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
            h, y = self._step(self._packed, self.model.init_state(), x, np.float32(dt))
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
            h, y = self._step(self._packed, self.h, x, np.float32(dt))
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
