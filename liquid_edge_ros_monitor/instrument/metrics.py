"""An instrumented node's Prometheus collector (`liquid_edge_inference_*`, `liquid_edge_model_*`).

The same names and labels for liquid_inference and for a team's own node (the `node` label tells
them apart), so the shipped alerts and dashboards work for both.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, Iterator, NamedTuple, Optional, Tuple

import numpy as np
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily, Metric)
from prometheus_client.registry import Collector

from ..core.histogram import LatencyHistogram
from .model_info import MODEL_INFO_LABELS


#: Inference steps run from microseconds (a small jitted cell) to a control period.
INFERENCE_BUCKETS: Tuple[float, ...] = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0)


class _Families(NamedTuple):
    """One scrape's metric families, by name (their order is the exposition's)."""
    latency: HistogramMetricFamily
    inferences: CounterMetricFamily
    errors: CounterMetricFamily
    misses: CounterMetricFamily
    drift: GaugeMetricFamily
    accuracy: GaugeMetricFamily
    energy: CounterMetricFamily
    power: GaugeMetricFamily
    kept: CounterMetricFamily
    dropped: CounterMetricFamily
    info: GaugeMetricFamily
    spans_dropped: CounterMetricFamily
    spans_failed: CounterMetricFamily


class InferenceMetrics(Collector):
    """Renders an instrumented node's counters and gauges (`liquid_edge_inference_*`).

    The monitor owns the numbers (plain attributes written by the callbacks it wraps); latency
    histograms (one per stage, and `callback` for the whole) are fed in batches by `add_latencies`
    from the update timer, not per callback.
    """

    def __init__(self, robot: str, node: str) -> None:
        self.labels = [robot, node]
        self.hist: Dict[str, LatencyHistogram] = {'callback': LatencyHistogram(INFERENCE_BUCKETS)}
        self.inferences = 0
        self.errors: Dict[str, int] = {'non_finite_input': 0, 'non_finite_output': 0,
                                       'bad_input': 0, 'step_failed': 0, 'input_stale': 0,
                                       'stamp_gap': 0, 'exception': 0}
        self.deadline_misses = 0
        self.drift: Optional[float] = None
        self.accuracy: Optional[float] = None
        self.energy: Dict[str, float] = {}      # source -> joules
        self.power: Dict[str, float] = {}       # source -> watts
        self.traces_kept: Dict[str, int] = {}      # reason -> kept callbacks (tracing on only)
        self.traces_dropped: Dict[str, int] = {}   # rate_limited / queue_full
        self.model_info: Optional[Dict[str, str]] = None   # ModelInfo.labels()
        self.tracing: Optional[Any] = None      # a Tracing: its span counters, read at scrape time

    def add_latencies(self, stage: str, values_s: np.ndarray) -> None:
        hist = self.hist.get(stage)
        if hist is None:
            hist = self.hist[stage] = LatencyHistogram(INFERENCE_BUCKETS)
        hist.add(values_s)

    def add_exemplar(self, stage: str, value_s: float, trace_id: int, span_id: int,
                     timestamp_s: float) -> None:
        """Link the `stage` latency bucket of `value_s` to a kept trace."""
        hist = self.hist.get(stage)
        if hist is None:
            return
        hist.set_exemplar(
            value_s, {'trace_id': format(trace_id, '032x'), 'span_id': format(span_id, '016x')},
            timestamp_s)

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterator[Metric]:
        f = self._families()
        lab = self.labels
        for stage, h in list(self.hist.items()):
            f.latency.add_metric([stage] + lab, h.buckets(), h.total)
        f.inferences.add_metric(lab, self.inferences)
        for reason, n in list(self.errors.items()):
            f.errors.add_metric([reason] + lab, n)
        f.misses.add_metric(lab, self.deadline_misses)
        for fam, v in ((f.drift, self.drift), (f.accuracy, self.accuracy)):
            if v is not None:
                fam.add_metric(lab, v)
        for source, j in list(self.energy.items()):
            f.energy.add_metric([source] + lab, j)
        for source, w in list(self.power.items()):
            f.power.add_metric([source] + lab, w)
        for reason, n in list(self.traces_kept.items()):
            f.kept.add_metric([reason] + lab, n)
        for reason, n in list(self.traces_dropped.items()):
            f.dropped.add_metric([reason] + lab, n)
        if self.model_info is not None:
            f.info.add_metric([self.model_info[k] for k in MODEL_INFO_LABELS] + lab, 1)
        tracing = self.tracing
        f.spans_dropped.add_metric(lab, tracing.dropped_spans if tracing is not None else 0)
        f.spans_failed.add_metric(lab, tracing.failed_spans if tracing is not None else 0)
        return iter(f)

    @staticmethod
    def _families() -> _Families:
        lab = ['robot', 'node']
        return _Families(
            latency=HistogramMetricFamily(
                'liquid_edge_inference_latency_seconds',
                'Inference latency by stage: callback (the whole callback, '
                'input received to command published) and each stage the node '
                'marks (liquid_inference: preprocess, forward, publish).',
                labels=['stage'] + lab),
            inferences=CounterMetricFamily(
                'liquid_edge_inferences',
                'Inference callbacks run (liquid_inference: network steps).',
                labels=lab),
            errors=CounterMetricFamily(
                'liquid_edge_inference_errors',
                'Errors by reason: non_finite_input, non_finite_output, '
                'bad_input, bad_output (not numbers); step_failed (the step raised); '
                'exception (the callback raised); input_stale (times the input went '
                'stale); stamp_gap (input stamps jumped by more than the input timeout: '
                'state reset); or a reason the node reports.',
                labels=['reason'] + lab),
            misses=CounterMetricFamily(
                'liquid_edge_inference_deadline_misses',
                'Callbacks that took longer than the control period.', labels=lab),
            drift=GaugeMetricFamily(
                'liquid_edge_inference_input_drift',
                'Mean |z-score| of recent inputs against the training statistics '
                '(about 0.8 in distribution).', labels=lab),
            accuracy=GaugeMetricFamily(
                'liquid_edge_model_accuracy',
                'Share of recent outputs within tolerance of the ground truth.',
                labels=lab),
            energy=CounterMetricFamily(
                'liquid_edge_inference_energy_joules',
                'Energy: source="rapl" measured (CPU package counter), '
                'source="estimate" from the MAC-count model.',
                labels=['source'] + lab),
            power=GaugeMetricFamily(
                'liquid_edge_inference_power_watts',
                'Energy rate over the last update period, by source.',
                labels=['source'] + lab),
            kept=CounterMetricFamily(
                'liquid_edge_inference_traces_kept',
                'Callbacks whose trace was kept, by reason: error, deadline, slow, '
                'startup (always kept, rate-limited) or head (sampling ratio).',
                labels=['reason'] + lab),
            dropped=CounterMetricFamily(
                'liquid_edge_inference_traces_dropped',
                'Traces lost: rate_limited (anomalies over '
                'tracing.max_anomalies_per_s, not head-sampled) or queue_full '
                '(export backlog).',
                labels=['reason'] + lab),
            info=GaugeMetricFamily(
                'liquid_edge_model_info',
                'The loaded model (always 1): file name, sha256 of the weights file, '
                'cell, mode, units.', labels=list(MODEL_INFO_LABELS) + lab),
            spans_dropped=CounterMetricFamily(
                'liquid_edge_inference_spans_dropped',
                'Spans dropped because the bounded export queue was full '
                '(collector dead or slow); memory never grows.', labels=lab),
            spans_failed=CounterMetricFamily(
                'liquid_edge_inference_spans_export_failed',
                'Spans lost because their export failed (collector unreachable '
                'or refusing).', labels=lab),
        )
