"""Keeping XLA's compile off the control loop's core when a model compiles in the node (Linux): a
swap's new architecture is compiled by a child process (`lnn/compile_apart.py`); this is for when
that fails.

XLA compiles on threads of its own, started by the process's first compilation, at the process's
priority: `nice` on the preparing thread does not reach them, and an unprivileged process cannot
lower a thread's nice value back once raised, so they cannot be reniced for one preparation only.
Their CPU affinity can be narrowed and restored freely: while a model is prepared they and the
preparing thread share one core, and the scheduler keeps the control thread on the others.
bench/model_change.py `--models new` measures it. Without /proc or sched_setaffinity, or with one
core, nothing is done.
"""
from __future__ import annotations

import os
from typing import Callable, Dict, FrozenSet, Literal, Optional, Set, Tuple, TypeVar

T = TypeVar('T')


def thread_ids() -> Set[int]:
    """The native ids of this process's threads (empty where /proc is not there)."""
    try:
        return {int(t) for t in os.listdir('/proc/self/task')}
    except OSError:
        return set()


def started_by(fn: Callable[[], T]) -> Tuple[T, FrozenSet[int]]:
    """`fn()` and the threads that appeared while it ran (the process's first JAX compilation:
    XLA's thread pools)."""
    before = thread_ids()
    value = fn()
    return value, frozenset(thread_ids() - before)


class Confined:
    """`with Confined(threads):` the threads (and the calling one) on one core, their own
    affinity restored after."""

    def __init__(self, threads: FrozenSet[int]) -> None:
        self.threads = threads
        self._saved: Dict[int, Set[int]] = {}

    def __enter__(self) -> 'Confined':
        cpus = _affinity(0)
        if cpus is None or len(cpus) < 2:
            return self
        one = {max(cpus)}
        import threading
        for tid in set(self.threads) | {threading.get_native_id()}:
            saved = _affinity(tid)
            if saved is None:
                continue                    # gone, or not allowed: left as it is
            try:
                os.sched_setaffinity(tid, one)
            except OSError:
                continue
            self._saved[tid] = saved
        return self

    def __exit__(self, *_exc: object) -> Literal[False]:
        for tid, cpus in self._saved.items():
            try:
                os.sched_setaffinity(tid, cpus)
            except OSError:
                pass                        # the thread ended meanwhile
        self._saved = {}
        return False


def _affinity(tid: int) -> Optional[Set[int]]:
    try:
        return set(os.sched_getaffinity(tid))
    except (AttributeError, OSError):
        return None
