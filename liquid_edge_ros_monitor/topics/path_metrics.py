"""The topic monitor's black-box path metrics (`liquid_edge_path_*`) and `/diagnostics` statuses.

A few paths per robot: prometheus_client's own collector and formatter are fast enough here (the
topic families, a thousand topics' worth, are rendered by hand in `metrics.py`).
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Dict, Iterator, NamedTuple, Optional

from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily, Metric)

from ..core.diagnostics import DiagnosticTask, ERROR, OK, STALE, WARN
from ..core.histogram import LatencyHistogram
from .paths import PathReport

_LEVELS = (OK, WARN, ERROR, STALE)


class _Families(NamedTuple):
    """One scrape's metric families, by name (their order is the exposition's)."""
    latency: HistogramMetricFamily
    inputs: CounterMetricFamily
    outputs: CounterMetricFamily
    missed: CounterMetricFamily
    status: GaugeMetricFamily
    silence: GaugeMetricFamily


class PathMetrics:
    """Renders the latest `PathReport` of each path; `update` runs on the statistics thread."""

    def __init__(self, robot: str) -> None:
        self.robot = robot
        self._reports: Dict[str, PathReport] = {}
        self._hist: Dict[str, LatencyHistogram] = {}
        self._lock = threading.Lock()
        #: Why the monitor's threads cannot be trusted (set by the node): statuses then read 3.
        self.down_reason: Optional[Callable[[], Optional[str]]] = None

    def update(self, report: PathReport) -> None:
        key = report.config.key
        with self._lock:
            hist = self._hist.get(key)
            if hist is None:
                hist = self._hist[key] = LatencyHistogram()
            hist.add(report.new_latencies_s)
            self._reports[key] = report

    def report(self, key: str) -> Optional[PathReport]:
        return self._reports.get(key)

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        f = self._families()
        down = self.down_reason() if self.down_reason is not None else None
        with self._lock:
            rows = [(k, r, self._hist[k].buckets(), self._hist[k].total)
                    for k, r in self._reports.items()]
        for key, r, buckets, total in rows:
            lab = [key, self.robot]
            f.latency.add_metric(lab, buckets, total)
            n_in, n_missed, by_stamp, by_arrival, unpaired = r.totals
            f.inputs.add_metric(lab, n_in)
            f.missed.add_metric(lab, n_missed)
            for match, n in (('stamp', by_stamp), ('arrival', by_arrival), ('none', unpaired)):
                f.outputs.add_metric(lab + [match], n)
            f.status.add_metric(lab, 3 if down else r.level)
            if r.silence_s is not None and not down:
                f.silence.add_metric(lab, r.silence_s)
        return iter(f)

    @staticmethod
    def _families() -> _Families:
        lab = ['path', 'robot']
        return _Families(
            latency=HistogramMetricFamily(
                'liquid_edge_path_latency_seconds',
                'Reaction latency of a black-box path: output arrival minus its '
                'input\'s (matched by header.stamp), or minus the latest input\'s '
                'before it.', labels=lab),
            inputs=CounterMetricFamily(
                'liquid_edge_path_inputs', 'Inputs on the path\'s input topics.',
                labels=lab),
            outputs=CounterMetricFamily(
                'liquid_edge_path_outputs',
                'Outputs, by how they were paired: stamp (exact), arrival (the '
                'latest input before), none (no input before them).',
                labels=lab + ['match']),
            missed=CounterMetricFamily(
                'liquid_edge_path_missed',
                'Inputs no output followed within the path\'s deadline.',
                labels=lab),
            status=GaugeMetricFamily(
                'liquid_edge_path_status',
                'Diagnostic level of the path: 0 OK, 1 WARN, 2 ERROR, 3 STALE (no '
                'input: nothing to judge).', labels=lab),
            silence=GaugeMetricFamily(
                'liquid_edge_path_output_silence_seconds',
                'Seconds since the path\'s last output (since its first input '
                'before one).', labels=lab),
        )


class PathTask(DiagnosticTask):
    """The `/diagnostics` status `path <key>`."""

    def __init__(self, key: str, metrics: PathMetrics, down: Callable[[], Optional[str]]) -> None:
        super().__init__(f'path {key}')
        self._key = key
        self._metrics = metrics
        self._down = down

    def run(self, stat: Any) -> Any:
        down = self._down()
        if down:
            stat.summary(STALE, f'{down}: the monitor stopped updating this path')
            return stat
        r = self._metrics.report(self._key)
        if r is None:
            stat.summary(OK, 'starting')
            return stat
        c = r.config
        stat.summary(_LEVELS[r.level], r.message)
        stat.add('inputs', ', '.join(c.inputs))
        stat.add('output', c.output)
        stat.add('deadline (ms)', f'{c.deadline * 1e3:g}')
        for name, v in (('latency p50 (ms)', r.latency_p50_s), ('latency p95 (ms)',
                                                                r.latency_p95_s)):
            stat.add(name, f'{v * 1e3:.3f}' if v is not None else 'n/a')
        stat.add('missed (%)', f'{r.missed_ratio * 100:.1f}' if r.missed_ratio is not None
                 else 'n/a')
        stat.add('outputs per input', f'{r.outputs_per_input:.2f}'
                 if r.outputs_per_input is not None else 'n/a')
        _, _, by_stamp, by_arrival, _ = r.totals
        stat.add('matched by', 'header.stamp' if by_stamp >= by_arrival and by_stamp else
                 'arrival (latest input before)' if by_arrival else 'n/a')
        return stat
