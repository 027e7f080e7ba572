"""liquid_inference's own metrics, beside the instrumentation's: XLA compilations, the hidden state,
model swaps and rollbacks, and the shadow models (`liquid_edge_shadow_*`).

Read at scrape time from the node (the hidden state is replaced whole by each step and the shadows
dict is copied before it is read, so the HTTP thread never sees a half-made value); the shadow
histograms are fed from rings on the update timer (`update`).
"""
from __future__ import annotations

import time
from typing import Any, Dict, Iterator, List, NamedTuple, Tuple

from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily, Metric)

from ..core.histogram import LatencyHistogram
from ..instrument.metrics import INFERENCE_BUCKETS
from .loading import compilations
from .rollback import REASONS

#: |active - shadow| of one output, in the outputs' own units (m/s, rad/s for a velocity command).
DIFFERENCE_BUCKETS: Tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                         1.0, 2.5, 5.0)


class _Families(NamedTuple):
    """One scrape's metric families, by name (their order is the exposition's)."""
    jit: CounterMetricFamily
    norm: GaugeMetricFamily
    swaps: CounterMetricFamily
    rollbacks: CounterMetricFamily
    diff: HistogramMetricFamily
    agreement: GaugeMetricFamily
    latency: HistogramMetricFamily
    shadow_errors: CounterMetricFamily
    skipped: CounterMetricFamily
    shadow_accuracy: GaugeMetricFamily
    shadow_info: GaugeMetricFamily


class ModelMetrics:
    """A prometheus_client collector over one LiquidInference node."""

    def __init__(self, node: Any) -> None:
        self._node = node
        #: (role, model) -> (per-output difference histograms, latency histogram)
        self._hist: Dict[Tuple[str, str], Tuple[List[LatencyHistogram], LatencyHistogram]] = {}

    def update(self) -> None:
        """Update timer: the shadows' new differences and latencies into their histograms."""
        for role, shadow in list(self._node.deployment.shadows.items()):
            key = (role, shadow.loaded.info.name)
            hist = self._hist.get(key)
            if hist is None:
                hist = self._hist[key] = ([LatencyHistogram(DIFFERENCE_BUCKETS)
                                           for _ in shadow.differences],
                                          LatencyHistogram(INFERENCE_BUCKETS))
            for h, ring in zip(hist[0], shadow.differences):
                h.add(ring.take_new())
            hist[1].add(shadow.latency.take_new())
        live = {(r, s.loaded.info.name) for r, s in self._node.deployment.shadows.items()}
        for key in [k for k in self._hist if k not in live]:
            del self._hist[key]            # a shadow let go: its series go with it

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        f = self._families()
        node = self._node
        lab = node.metrics.labels
        dep = node.deployment
        f.jit.add_metric(lab, compilations())
        f.norm.add_metric(lab, node.controller.state_norm())
        for result, n in list(dep.swaps.items()):
            f.swaps.add_metric([result] + lab, n)
        for reason in REASONS:
            f.rollbacks.add_metric([reason] + lab, dep.rollbacks.get(reason, 0))
        names = node.model.output_names or [f'output{i}' for i in range(node.model.n_outputs)]
        truth_fresh = node.monitor.quality.truth_fresh(time.monotonic_ns())
        for role, shadow in list(dep.shadows.items()):
            info = shadow.loaded.info
            slab = [role, info.name] + lab
            f.shadow_info.add_metric([info.sha256] + slab, 1)
            hist = self._hist.get((role, info.name))
            if hist is not None:
                for name, h in zip(names, hist[0]):
                    f.diff.add_metric([name] + slab, h.buckets(), h.total)
                f.latency.add_metric(slab, hist[1].buckets(), hist[1].total)
            if shadow.agreement.value is not None:
                f.agreement.add_metric(slab, shadow.agreement.value)
            for reason, n in list(shadow.errors.items()):
                f.shadow_errors.add_metric([reason] + slab, n)
            f.skipped.add_metric(slab, shadow.skipped)
            if shadow.accuracy.value is not None and truth_fresh:
                f.shadow_accuracy.add_metric(slab, shadow.accuracy.value)
        return iter(f)

    @staticmethod
    def _families() -> _Families:
        lab = ['robot', 'node']
        shadow = ['shadow', 'model'] + lab
        return _Families(
            jit=CounterMetricFamily(
                'liquid_edge_jit_compilations',
                'XLA compilations in this process (flat after warm-up, but for '
                'model swaps and shadows).', labels=lab),
            norm=GaugeMetricFamily(
                'liquid_edge_inference_hidden_state_norm',
                'L2 norm of the active model\'s hidden state.', labels=lab),
            swaps=CounterMetricFamily(
                'liquid_edge_model_swaps',
                'Model swaps requested through model_path: ok (installed) or '
                'failed (refused after the check: compile or warm-up failed).',
                labels=['result'] + lab),
            rollbacks=CounterMetricFamily(
                'liquid_edge_model_rollbacks',
                'Automatic rollbacks to the previous model after a swap, by the '
                'bound breached: non_finite, latency, accuracy, divergence.',
                labels=['reason'] + lab),
            diff=HistogramMetricFamily(
                'liquid_edge_shadow_output_difference',
                '|active - shadow| per output, in the output\'s units.',
                labels=['output'] + shadow),
            agreement=GaugeMetricFamily(
                'liquid_edge_shadow_agreement',
                'Share of the shadow\'s recent outputs within shadow.tolerance of '
                'the active model\'s.', labels=shadow),
            latency=HistogramMetricFamily(
                'liquid_edge_shadow_latency_seconds',
                'The shadow model\'s step latency.', labels=shadow),
            shadow_errors=CounterMetricFamily(
                'liquid_edge_shadow_errors',
                'Shadow steps with a non-finite output or that raised.',
                labels=['reason'] + shadow),
            skipped=CounterMetricFamily(
                'liquid_edge_shadow_skipped',
                'Inputs the shadow skipped: its step did not fit in '
                'shadow.max_share of the deadline.', labels=shadow),
            shadow_accuracy=GaugeMetricFamily(
                'liquid_edge_shadow_accuracy',
                'The shadow\'s accuracy against ground truth (absent without '
                'fresh truth).', labels=shadow),
            shadow_info=GaugeMetricFamily(
                'liquid_edge_shadow_info',
                'The shadow model (always 1): role, name, sha256.',
                labels=['sha256'] + shadow),
        )
