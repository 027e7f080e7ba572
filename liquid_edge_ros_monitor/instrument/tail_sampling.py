"""Tail-based sampling of the control callback's traces, decided in process (no ROS, no OpenTelemetry).

Head sampling alone (keep a random share of inputs) misses exactly the callbacks an engineer wants
to open: at a ratio of 0.05, 95 % of the failed or slow ones have no trace. So every callback notes
its stage timestamps (cheap; its trace id is drawn only if a log line or keeping asks), and `TailSampler.decide` says at its end
whether the trace is kept, and why:

- ``error``: a non-finite or unreadable input, a non-finite output, a failed step;
- ``deadline``: the callback took longer than its deadline (the control period);
- ``slow``: it took longer than the slow threshold (default: the node's latency budget, the
  user's own statement of "too slow", so a slow trace, the latency status and the latency alert
  mean the same thing; an adaptive quantile would keep ~1 % of a healthy loop's callbacks and
  drift with the load it is meant to reveal);
- ``startup``: one of the first callbacks after start (compilation, caches, first discovery);
- ``head``: otherwise, at the head sampling ratio (the baseline view of normal callbacks).

The first four ("anomalies") are kept always, up to a token bucket of `max_anomalies_per_s`
(burst: one second's worth), so an anomaly storm (a NaN sensor at 1 kHz) cannot flood the
exporter or stall the loop; an anomaly over the limit still gets its head-sampling chance and is
otherwise counted as dropped (`dropped['rate_limited']`).
"""
from __future__ import annotations

import random
from typing import Callable, Dict, Optional

REASONS = ('error', 'deadline', 'slow', 'startup', 'head')


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved; `take(now_s)` spends one if there is one."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self._last: Optional[float] = None

    def take(self, now_s: float) -> bool:
        last, self._last = self._last, now_s
        if last is not None and now_s > last:
            self.tokens = min(self.burst, self.tokens + (now_s - last) * self.rate)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class TailSampler:
    """Decides, at the end of each callback, whether its trace is kept and why."""

    __slots__ = ('head_ratio', 'slow_threshold_s', 'startup_left', '_bucket', '_rnd', 'kept',
                 'dropped')

    def __init__(self, head_ratio: float, slow_threshold_s: float, startup: int,
                 max_anomalies_per_s: float,
                 rnd: Callable[[], float] = random.random) -> None:
        if not 0.0 <= head_ratio <= 1.0:
            raise ValueError(f'head_ratio must be in [0, 1], got {head_ratio}')
        self.head_ratio = head_ratio
        self.slow_threshold_s = slow_threshold_s
        self.startup_left = startup
        self._bucket = TokenBucket(max_anomalies_per_s, max(1.0, max_anomalies_per_s))
        self._rnd = rnd
        self.kept: Dict[str, int] = {r: 0 for r in REASONS}
        self.dropped: Dict[str, int] = {'rate_limited': 0}

    def decide(self, error: bool, took_s: float, deadline_s: Optional[float],
               now_s: float) -> Optional[str]:
        """The reason to keep this callback's trace, or None to drop it. `now_s` is a monotonic
        time for the rate limit."""
        if error:
            reason: Optional[str] = 'error'
        elif deadline_s and took_s > deadline_s:
            reason = 'deadline'
        elif self.slow_threshold_s and took_s > self.slow_threshold_s:
            reason = 'slow'
        elif self.startup_left > 0:
            reason = 'startup'
        else:
            reason = None
        if reason is not None:
            if reason == 'startup':
                self.startup_left -= 1
            if self._bucket.take(now_s):
                self.kept[reason] += 1
                return reason
        ratio = self.head_ratio
        if ratio >= 1.0 or (ratio > 0.0 and self._rnd() < ratio):
            self.kept['head'] += 1
            return 'head'
        if reason is not None:
            self.dropped['rate_limited'] += 1
        return None
