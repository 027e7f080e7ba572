"""What goes into and comes out of an inference loop (no ROS): non-finite values, drift against
the training statistics, accuracy against ground truth, and the errors a node reports.

An error has a reason (a small fixed set: it is a metric label) and an optional detail (the
words after it on the status and in the log). Where it shows depends on the reason: input
problems on the `inputs` status, everything else on `outputs`, each for `RECENT_S` after it
happened; the log line is throttled per reason, since a fault may repeat per message.
"""
from __future__ import annotations

import logging
import time
import warnings
from math import isfinite
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from ..core.levels import ERROR, WARN
from .model_info import ModelInfo
from .stats import Accuracy, DriftScore, InputRing, LogThrottle

#: Input problems: shown on `inputs`, at this level; any other reason shows on `outputs` as ERROR.
INPUT_PROBLEMS = {'non_finite_input': ERROR, 'bad_input': ERROR, 'stamp_gap': WARN}
#: How long a problem stays on its status after it happened, seconds.
RECENT_S = 5.0

_WORDS = {'non_finite_input': 'non-finite input', 'non_finite_output': 'non-finite output',
          'bad_input': 'unreadable input', 'bad_output': 'unreadable output',
          'step_failed': 'network step failed', 'exception': 'exception in the callback',
          'stamp_gap': 'stamp gap'}


def words(reason: str, detail: str = '') -> str:
    """A reason and its detail as the status and the log say it."""
    text = _WORDS.get(reason, reason.replace('_', ' '))
    return f'{text}: {detail}' if detail else text


def as_vector(values: Any) -> np.ndarray:
    """Reported values as a flat array, without a copy where one can be avoided: numpy arrays as
    they are (flattened), tensors of torch or of anything else with `.numpy()` through it (a
    tensor with gradients, or on a device, through `.detach().cpu()` first), sequences and
    scalars as float64."""
    if type(values) is not np.ndarray:
        to_numpy = getattr(values, 'numpy', None)
        if to_numpy is not None and not isinstance(values, (list, tuple)):
            try:
                values = to_numpy()
            except (RuntimeError, TypeError, ValueError):   # gradients, or not on the CPU
                values = values.detach().cpu().numpy()
        else:
            values = np.asarray(values, dtype=np.float64)
    return values if values.ndim == 1 else values.reshape(-1)


#: Reported values of at most this many elements are checked as Python floats (`flat_values`).
SMALL = 64


def flat_values(values: Any) -> Union[List[Any], np.ndarray]:
    """Reported values, flat: a list of Python numbers when there are at most `SMALL` of them,
    else a flat array (`as_vector`).

    Why a list: what a callback reports is usually a few features and a few commands, and
    the callback has just run a model that evicted the caches. There each numpy call costs
    microseconds: a torch tensor's `.numpy()`, a reshape and a finite check by numpy took about
    13 us per value reported in the example's callback (a 230 us ncps CfC forward, 2-core VM),
    against about 2 us for the tensor's own `tolist()` and `math.isfinite` over the list.
    `tolist()` also reads a tensor with gradients or on a device (it copies to the host)."""
    if isinstance(values, (list, tuple)):
        flat: Any = list(values)        # a copy: the input ring keeps it, the caller may reuse its own
        while flat and isinstance(flat[0], (list, tuple)):
            flat = [v for row in flat for v in row]
        if len(flat) > SMALL or flat and not isinstance(flat[0], (int, float)):
            return as_vector(values)    # many, or arrays and numpy scalars inside
        return flat
    if getattr(values, 'tolist', None) is None:
        return as_vector(values)        # a plain number
    numel = getattr(values, 'numel', None)         # torch; numpy and JAX have .size
    if (numel() if numel is not None else values.size) > SMALL:
        return as_vector(values)
    flat = values.tolist()              # a new list, ours
    if type(flat) is not list:          # a 0-d array or tensor: one number
        return [flat]
    while flat and type(flat[0]) is list:
        flat = flat[0] if len(flat) == 1 else [v for row in flat for v in row]
    return flat


class UnreadableValues(ValueError):
    """Reported values that cannot be read as numbers (a ragged list, text that is not a
    number). `short` fits a status message ("inputs() got list"); the exception's text adds
    why, for the log."""

    def __init__(self, call: str, values: Any, exc: BaseException) -> None:
        self.short = f'{call}() got {type(values).__name__}'
        super().__init__(f'{self.short}: {exc}'.splitlines()[0])


_zeros: Dict[Tuple[int, Any], np.ndarray] = {}
# inf * 0 in `all_finite` is numpy's "invalid value": expected there, and a warning per bad input
# would cost more than the check.
warnings.filterwarnings('ignore', 'invalid value encountered in dot', RuntimeWarning, __name__)


def all_finite(v: Union[List[Any], np.ndarray]) -> bool:
    """Whether every value of `flat_values`' result is finite. A list: `math.isfinite` over it.
    An array: its dot product with zeros of its own type is exactly 0 when they all are, and
    NaN when any is NaN or infinite (inf * 0 is NaN); one BLAS call, against three for
    `np.isfinite(v).all()`, and no cast (float32 against float64 zeros cost 3 us more in the
    example's callback)."""
    if isinstance(v, list):
        return all(map(isfinite, v))
    if v.dtype.kind in 'iub':
        return True
    key = (v.size, v.dtype)
    z = _zeros.get(key)
    if z is None:
        z = _zeros[key] = np.zeros(v.size, dtype=v.dtype)
    return bool(np.dot(v, z) == 0.0)


class SignalQuality:
    """Inputs, outputs and ground truth of one loop, and the errors it reported."""

    __slots__ = ('metrics', 'log', 'inputs', 'drift', 'accuracy', 'truth', '_truth_ns',
                 'truth_max_age_ns', 'problems', '_throttles')

    def __init__(self, metrics: Any, model: ModelInfo, drift_window: int,
                 accuracy_tolerance: float, accuracy_window: int, truth_max_age_s: float,
                 log: logging.Logger) -> None:
        self.metrics = metrics            # InferenceMetrics: the error counters are written there
        self.log = log
        self.inputs = InputRing()
        self.drift = DriftScore(model.input_mean, model.input_std, drift_window)
        self.accuracy = Accuracy(accuracy_tolerance, accuracy_window)
        self.truth: Optional[np.ndarray] = None
        self._truth_ns = 0
        self.truth_max_age_ns = int(truth_max_age_s * 1e9)
        #: 'inputs' / 'outputs' -> (reason, detail, monotonic ns) of the latest problem.
        self.problems: Dict[str, Tuple[str, str, int]] = {}
        self._throttles: Dict[str, LogThrottle] = {}

    def check_inputs(self, values: Any) -> bool:
        """Whether the inputs are all finite; finite ones are kept for the drift score.
        `UnreadableValues` when they are not numbers."""
        x: Union[List[Any], np.ndarray]
        try:                            # only the reading: what raises here is the values' fault
            if type(values) is list and 0 < len(values) <= SMALL and type(values[0]) is float:
                x = values[:]           # flat_values' first case, inlined: the common report
            else:
                x = flat_values(values)
            try:
                ok = all(map(isfinite, x)) if type(x) is list else all_finite(x)
            except TypeError:           # complex numbers from an array, a non-number in a list
                x = as_vector(values)
                ok = all_finite(x)
        except (TypeError, ValueError) as exc:
            raise UnreadableValues('inputs', values, exc) from None
        if not ok:
            return False
        self.inputs.add(x)
        return True

    def check_outputs(self, values: Any, now_ns: Optional[int] = None) -> bool:
        """Whether the outputs are all finite; finite ones are scored against fresh truth (its
        age at `now_ns`, default: now). `UnreadableValues` when they are not numbers."""
        # check_inputs' finite check, written out again rather than a shared function: both run
        # in every callback, where one more call costs about 0.5 us after a torch forward.
        y: Union[List[Any], np.ndarray]
        try:
            if type(values) is list and 0 < len(values) <= SMALL and type(values[0]) is float:
                y = values              # as in check_inputs; not kept, so not copied
            else:
                y = flat_values(values)
            try:
                ok = all(map(isfinite, y)) if type(y) is list else all_finite(y)
            except TypeError:
                y = as_vector(values)
                ok = all_finite(y)
        except (TypeError, ValueError) as exc:
            raise UnreadableValues('outputs', values, exc) from None
        if not ok:
            return False
        truth = self.truth
        if truth is None:
            return True
        if now_ns is None:
            now_ns = time.monotonic_ns()
        if now_ns - self._truth_ns <= self.truth_max_age_ns and truth.size == len(y):
            self.accuracy.add(y, truth)          # never against truth of any age
        return True

    def set_truth(self, values: Any, now_ns: int) -> None:
        self.truth = as_vector(values).astype(np.float64, copy=True)
        self._truth_ns = now_ns

    def truth_age_s(self, now_ns: int) -> Optional[float]:
        return None if self.truth is None else (now_ns - self._truth_ns) * 1e-9

    def truth_fresh(self, now_ns: int) -> bool:
        return self.truth is not None and now_ns - self._truth_ns <= self.truth_max_age_ns

    def report(self, reason: str, detail: str = '', log_detail: Optional[str] = None) -> None:
        """Count an error, put it on its status for `RECENT_S`, log it (throttled per reason;
        with `log_detail` instead of `detail` when given: the status keeps a short one)."""
        errors = self.metrics.errors
        errors[reason] = errors.get(reason, 0) + 1
        now = time.monotonic_ns()
        place = 'inputs' if reason in INPUT_PROBLEMS else 'outputs'
        self.problems[place] = (reason, detail, now)
        throttle = self._throttles.get(reason)
        if throttle is None:
            throttle = self._throttles[reason] = LogThrottle()
        held = throttle.allow(now * 1e-9)
        if held is not None:
            level = logging.WARNING if INPUT_PROBLEMS.get(reason) == WARN else logging.ERROR
            self.log.log(level, words(reason, detail if log_detail is None else log_detail)
                         + (f' ({held} similar messages suppressed)' if held else ''),
                         extra={'reason': reason})

    def recent(self, place: str, now_ns: int) -> Optional[Tuple[str, str]]:
        """(reason, detail) of `place`'s problem within the last `RECENT_S`, or None."""
        p = self.problems.get(place)
        if p is None or now_ns - p[2] > RECENT_S * 1e9:
            return None
        return p[0], p[1]

    def update(self) -> None:
        """Update timer: score the inputs kept since the last update."""
        self.drift.add_many(self.inputs.take_new())
