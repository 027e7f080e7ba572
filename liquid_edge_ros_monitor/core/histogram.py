"""Prometheus histograms fed in batches with numpy, for collectors that render at scrape time.

prometheus_client's `Histogram.observe` takes one value and a lock per call; our nodes collect
latencies in arrays off the hot path and add them once per update period instead.

A bucket may carry an OpenMetrics exemplar (the latest one given for a value in that bucket, as
client_python keeps them): a trace id beside a latency, so a dashboard links a slow bucket to its
trace. Exemplars are rendered in the OpenMetrics exposition only.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np
from prometheus_client.samples import Exemplar


#: Robot latencies run from tens of microseconds (shared memory) to seconds (a stalled driver).
LATENCY_BUCKETS: Tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0)


class LatencyHistogram:
    """Cumulative bucket counts and sum, fed in batches (seconds)."""

    def __init__(self, bounds: Tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = np.asarray(bounds, dtype=float)
        #: The `le` label values, as prometheus_client writes them (made once, not per scrape).
        self.les: Tuple[str, ...] = tuple(repr(float(b)) for b in bounds) + ('+Inf',)
        self._counts = np.zeros(len(bounds) + 1, dtype=np.int64)   # last is +Inf
        self.total = 0.0
        self._exemplars: List[Optional[Exemplar]] = [None] * (len(bounds) + 1)

    def add(self, values_s: np.ndarray) -> None:
        if values_s.size == 0:
            return
        # Prometheus buckets are "less than or equal": side='left' puts v == bound into that bound.
        idx = np.searchsorted(self.bounds, values_s, side='left')
        self._counts += np.bincount(idx, minlength=self._counts.size)
        self.total += float(values_s.sum())

    def set_exemplar(self, value_s: float, labels: Dict[str, str], timestamp_s: float) -> None:
        """Attach an exemplar to the bucket `value_s` falls in (replacing that bucket's last one)."""
        i = int(np.searchsorted(self.bounds, value_s, side='left'))
        self._exemplars[i] = Exemplar(labels, value_s, timestamp_s)

    def cumulative(self) -> List[int]:
        """Cumulative bucket counts, one per `les` entry (the last is the count)."""
        return np.cumsum(self._counts).tolist()

    def buckets(self) -> list:
        """[(le, cumulative count[, exemplar]), ...] ending with +Inf, as HistogramMetricFamily
        wants."""
        out: list = []
        for le, c, ex in zip(self.les, self.cumulative(), self._exemplars):
            out.append((le, c) if ex is None else (le, c, ex))
        return out
