"""Background threads step aside, briefly, while a latency-sensitive job runs (a scrape).

A node's threads share one interpreter lock. With a thousand topics the topic monitor's receiver
and statistics threads are busy most of the time, and a scrape rendering 5 MB of text got a
fraction of the lock: 0.3-0.5 s per scrape where the rendering alone takes 30 ms. While a job
holds `priority()`, the other threads' `pause()` waits for it (the lock is free meanwhile), for
at most `max_s` per job: the receiver's messages wait in their DDS reader queues, and their
arrival times come from DDS reception stamps, so measurements do not change.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator


class StepAside:
    """`with gate.priority(): ...` on the job's thread; `gate.pause()` in the others' loops."""

    def __init__(self, max_s: float = 0.05) -> None:
        self.max_s = max_s
        self._clear = threading.Event()
        self._clear.set()
        self._lock = threading.Lock()
        self._jobs = 0
        self._until = 0.0

    @contextmanager
    def priority(self) -> Iterator[None]:
        with self._lock:
            self._jobs += 1
            self._until = time.monotonic() + self.max_s
            self._clear.clear()
        try:
            yield
        finally:
            with self._lock:
                self._jobs -= 1
                if self._jobs == 0:
                    self._clear.set()

    def pause(self) -> None:
        """Wait while a job has priority, at most until its `max_s` has passed."""
        if not self._clear.is_set():
            left = self._until - time.monotonic()
            if left > 0:
                self._clear.wait(left)
