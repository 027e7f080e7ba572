"""Changing the model of a running controller (no ROS): swaps without a gap, shadow models on the
real inputs, automatic rollback.

- **Swap.** A new model is checked at once (`loading.check_model`: files, tensors, sizes; the
  parameter change is refused with that one line) and then prepared on a background thread
  (`loading.prepare`: device, warm-up, and a compile only for an architecture new to the process,
  by a child process at nice 19, `lnn/compile_apart.py`: retrained weights run the program
  already compiled, `lnn/packed.py`). The control thread installs it between two callbacks
  (`take_ready`), from a reset state: no callback waits for XLA. While the background thread
  works, the interpreter's switch interval is lowered from 5 ms to 0.5 ms, so the control thread
  waits at most that for the GIL, and XLA's threads share one core with it
  (`compile_threads.py`: for a compile in the node, when the child failed).
  bench/model_change.py measures the gap.
- **Shadow.** A candidate (`shadow_model_path`) steps on the same inputs after the command is
  out, within `max_share` of the deadline (`shadow.Shadow`). Promoting it (setting `model_path`
  to its file) installs the very model that shadowed, already compiled (from a reset state, as
  any swap).
- **Rollback.** After a swap the previous model keeps running as a shadow for the window
  (`rollback.RollbackGuard`); a breach swaps it back at once, with the state it kept.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, Callable, Dict, FrozenSet, Optional, Tuple

from .compile_threads import Confined
from .loading import CheckedModel, LoadedModel
from .rollback import RollbackBounds, RollbackGuard
from .shadow import Shadow

#: The interpreter's switch interval while a model is prepared beside the control loop, seconds.
PREPARE_SWITCH_INTERVAL_S = 0.0005


def _lower_priority() -> None:
    """This thread at the lowest CPU priority (Linux: nice 19 for the thread alone), so that on a
    busy machine the compile yields the CPU to the control loop (threads XLA starts from here
    inherit it)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):
        pass                         # not Linux, or not allowed: the switch interval still helps


class Preparer:
    """Prepares one model at a time on a background thread."""

    def __init__(self, prepare: Callable[[CheckedModel], LoadedModel],
                 xla_threads: FrozenSet[int] = frozenset()) -> None:
        self._prepare = prepare
        self._xla_threads = xla_threads
        self._thread: Optional[threading.Thread] = None
        #: (purpose, path, LoadedModel or the exception) once done; taken by the control thread.
        self.done: Optional[Tuple[str, str, Any]] = None
        self.busy_with = ''             # the path being prepared

    @property
    def busy(self) -> bool:
        return bool(self.busy_with) or self.done is not None

    def start(self, checked: CheckedModel, purpose: str) -> None:
        self.busy_with = checked.path
        self._thread = threading.Thread(target=self._run, args=(checked, purpose),
                                        name='model-prepare', daemon=True)
        self._thread.start()

    def _run(self, checked: CheckedModel, purpose: str) -> None:
        _lower_priority()
        previous = sys.getswitchinterval()
        sys.setswitchinterval(PREPARE_SWITCH_INTERVAL_S)
        try:
            with Confined(self._xla_threads):
                result: Any = self._prepare(checked)
        except Exception as exc:  # noqa: BLE001 - reported by the control thread, one line
            result = exc
        finally:
            sys.setswitchinterval(previous)
        self.done = (purpose, checked.path, result)
        self.busy_with = ''

    def take(self) -> Optional[Tuple[str, str, Any]]:
        done, self.done = self.done, None
        return done

    def join(self, timeout_s: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)


class Deployment:
    """The active model, its shadows, and the rollback window after a swap."""

    def __init__(self, active: LoadedModel, prepare: Callable[[CheckedModel], LoadedModel],
                 bounds: RollbackBounds, shadow_tolerance: float, shadow_window: int,
                 accuracy_tolerance: float, xla_threads: FrozenSet[int] = frozenset()) -> None:
        self.active = active
        self.preparer = Preparer(prepare, xla_threads)
        self.bounds = bounds
        self._shadow_args = (shadow_tolerance, shadow_window, accuracy_tolerance)
        self.shadows: Dict[str, Shadow] = {}        # 'candidate', 'previous'
        self.guard: Optional[RollbackGuard] = None
        self.swaps = {'ok': 0, 'failed': 0}
        self.rollbacks: Dict[str, int] = {}
        #: (level, text, monotonic ns) of the latest deployment event, for the model status.
        self.note: Optional[Tuple[str, str, int]] = None
        self._promote = False

    # ---- requests (parameter changes, executor thread) ------------------------------------------

    def request_active(self, checked: CheckedModel) -> None:
        """Make `checked` the active model: the candidate itself when it is that file, else
        prepared in the background."""
        cand = self.shadows.get('candidate')
        if cand is not None and cand.loaded.path == checked.path:
            self._promote = True
        else:
            self.preparer.start(checked, 'active')

    def request_candidate(self, checked: Optional[CheckedModel]) -> None:
        """Shadow `checked` (None: no candidate any more)."""
        if checked is None:
            self.shadows.pop('candidate', None)
        else:
            self.preparer.start(checked, 'candidate')

    # ---- the control thread, between callbacks ---------------------------------------------------

    @property
    def pending(self) -> bool:
        return self._promote or self.preparer.done is not None

    def take_ready(self, now_ns: int) -> Optional[Tuple[str, Any]]:
        """Install what is ready: ('active', LoadedModel) for the node to switch to, ('candidate',
        Shadow), ('failed', (path, exception)), or None."""
        if self._promote:
            self._promote = False
            cand = self.shadows.pop('candidate')
            return 'active', self._swap_to(cand.loaded, now_ns)
        done = self.preparer.take()
        if done is None:
            return None
        purpose, path, result = done
        if isinstance(result, Exception):
            self.swaps['failed'] += 1
            return 'failed', (path, result)
        if purpose == 'candidate':
            shadow = self.shadows['candidate'] = Shadow('candidate', result, *self._shadow_args)
            return 'candidate', shadow
        return 'active', self._swap_to(result, now_ns)

    def _swap_to(self, new: LoadedModel, now_ns: int) -> LoadedModel:
        old, self.active = self.active, new
        self.swaps['ok'] += 1
        if self.bounds.window_s > 0:
            self.shadows['previous'] = Shadow('previous', old, *self._shadow_args)
            self.guard = RollbackGuard(self.bounds, now_ns)
        else:
            self.shadows.pop('previous', None)
            self.guard = None
        return new

    def close_window(self, now_ns: int) -> bool:
        """The rollback window ended without a breach: the previous model is let go. True when
        that happened now."""
        guard = self.guard
        if guard is None or guard.open(now_ns):
            return False
        self.guard = None
        self.shadows.pop('previous', None)
        return True

    def roll_back(self, reason: str) -> Tuple[LoadedModel, LoadedModel]:
        """Swap back to the previous model (its state as it shadowed); (bad, restored)."""
        previous = self.shadows.pop('previous')
        bad, self.active = self.active, previous.loaded
        self.guard = None
        self.rollbacks[reason] = self.rollbacks.get(reason, 0) + 1
        return bad, previous.loaded

    def set_note(self, level: str, text: str) -> None:
        self.note = (level, text, time.monotonic_ns())
