"""Background threads step aside, briefly, while a latency-sensitive job runs (a scrape).

A node's threads share one interpreter lock. With a thousand topics the topic monitor's receiver
and statistics threads are busy most of the time, and a scrape rendering 5 MB of text got a
fraction of the lock: 0.3-0.5 s per scrape where the rendering alone takes 30 ms. While a job
holds `priority()`, another thread's `pause()` waits for it (the lock is free meanwhile):

- at most `max_s` per pause, and once per job;
- and after a pause a thread does not pause again for `gap_s`, so that scrapes arriving back to
  back (several servers, a dashboard hammering the port) cannot hold a thread for more than
  max_s / (max_s + gap_s) of the time: its work goes on, slower, and never stops.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator


class StepAside:
    """`with gate.priority(): ...` on the job's thread; `gate.pause()` in the others' loops."""

    def __init__(self, max_s: float = 0.03, gap_s: float = 0.2) -> None:
        self.max_s = max_s
        self.gap_s = gap_s
        self._clear = threading.Event()
        self._clear.set()
        self._lock = threading.Lock()
        self._jobs = 0          # running now
        self._started = 0       # ever: a job's number
        self._local = threading.local()

    @contextmanager
    def priority(self) -> Iterator[None]:
        with self._lock:
            self._jobs += 1
            self._started += 1
            self._clear.clear()
        try:
            yield
        finally:
            with self._lock:
                self._jobs -= 1
                if self._jobs == 0:
                    self._clear.set()

    def pause(self) -> None:
        """Wait while a job has priority: at most `max_s`, once per job, not within `gap_s` of
        this thread's previous pause."""
        if self._clear.is_set():
            return
        local = self._local
        now = time.monotonic()
        job = self._started
        if job == getattr(local, 'job', 0) or now < getattr(local, 'next_ok', 0.0):
            return
        local.job = job
        self._clear.wait(self.max_s)
        local.next_ok = time.monotonic() + self.gap_s
