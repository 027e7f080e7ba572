"""The topic monitor's Prometheus collector (`liquid_edge_topic_*`).

A prometheus_client custom `Collector`: it renders the latest immutable `TopicReport` of each topic
at scrape time, so the hot path never touches a metric object. Latency histograms are accumulated
per update period with numpy (`LatencyHistogram.add`), not per message.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily, Metric)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from ..core.histogram import LatencyHistogram
from ..core.step_aside import StepAside
from .health import TopicReport


class _Series:
    """One topic in the collector: its latest report, its histograms and the text made once for it
    (the label string, each histogram's bucket-line prefixes).

    All of it sits in one dict entry, so `TopicMetrics.remove` drops it at once. A scrape that is
    rendering meanwhile still holds the object and may fill its caches, but writes them into an
    object nobody keeps: with the caches in dicts keyed by topic name, that write brought a
    removed topic's rows back (334 of 1,200 entries left after 600 topics were removed under
    continuous scraping, ~2.5 kB each; without a bound under churning topic names).
    """

    __slots__ = ('report', 'hist', 'labels', 'prefixes')

    def __init__(self, report: TopicReport, histograms: bool) -> None:
        self.report = report
        #: (header latency, transport latency); None: the topic's latency is not exported as
        #: histograms (`discovery.histograms: false` for a discovered topic).
        self.hist: Optional[Tuple[LatencyHistogram, LatencyHistogram]] = (
            (LatencyHistogram(), LatencyHistogram()) if histograms else None)
        self.labels: Optional[str] = None     # 'robot="...",topic="..."'
        self.prefixes: List[Optional[Tuple[str, ...]]] = [None, None]


#: The families, by name, in the order they are exposed: (kind, help, labels). Rendered and
#: collected by name (never by position), so adding one cannot shift another's samples.
_TOPIC = ('topic', 'robot')
_MONITOR = ('node', 'robot')
FAMILIES: Dict[str, Tuple[str, str, Tuple[str, ...]]] = {
    'liquid_edge_topic_messages': ('counter', 'Messages received on the topic.', _TOPIC),
    'liquid_edge_topic_bytes': ('counter', 'Serialized bytes received on the topic.', _TOPIC),
    'liquid_edge_topic_rate_hz': ('gauge', 'Message rate over the sliding window, Hz.', _TOPIC),
    'liquid_edge_topic_jitter_seconds': (
        'gauge', 'Standard deviation of the inter-message period over the window.', _TOPIC),
    'liquid_edge_topic_latency_seconds': (
        'histogram', 'Receipt time minus header.stamp (types with a std_msgs/Header).', _TOPIC),
    'liquid_edge_topic_transport_latency_seconds': (
        'histogram', 'DDS source timestamp to reception timestamp.', _TOPIC),
    'liquid_edge_topic_dropped_messages': (
        'counter', 'Messages missing from the publication sequence (one publisher).', _TOPIC),
    'liquid_edge_topic_publishers': ('gauge', 'Publishers on the topic.', _TOPIC),
    'liquid_edge_topic_status': (
        'gauge', 'Diagnostic level: 0 OK, 1 WARN, 2 ERROR, 3 STALE.', _TOPIC),
    'liquid_edge_topic_invalid_stamps': (
        'counter', 'Messages whose header.stamp was zero, negative, in the future or '
        'unreadable; transport_skew: DDS source stamp after the reception stamp '
        '(clock skew between hosts; not observed as latency).', _TOPIC + ('reason',)),
    'liquid_edge_topic_info': ('gauge', 'The topic\'s message type (value is 1).',
                               _TOPIC + ('type',)),
    'liquid_edge_monitor_up': (
        'gauge', '1 while the monitor\'s receiver and statistics threads run and update; 0 when '
        'one died or stalled (every topic status is then 3).', _MONITOR),
    'liquid_edge_topic_monitor_lost_messages': (
        'counter', 'Messages the monitor itself lost: its reader queue was full (it fell behind) '
        'and overwrote them. Not the topic\'s drops.', _TOPIC),
    'liquid_edge_topic_last_message_age_seconds': (
        'gauge', 'Seconds since the last message arrived (absent before the first).', _TOPIC),
    'liquid_edge_topic_refused': (
        'counter', 'Topics discovery refused because discovery.max_topics topics were tracked '
        '(each topic counted once per refusal; named on the discovery status).', _MONITOR),
    'liquid_edge_topic_discovery_errors': (
        'counter', 'Discovery passes that failed with an exception (logged; discovery went on '
        'at the next period).', _MONITOR),
}
_KINDS = {'counter': CounterMetricFamily, 'gauge': GaugeMetricFamily,
          'histogram': HistogramMetricFamily}
_STAMP_REASONS = ('zero', 'future', 'unreadable', 'transport_skew', 'negative')


def _stamp_counts(s: Any) -> Tuple[int, ...]:
    """The invalid-stamp counters of a snapshot, in `_STAMP_REASONS` order."""
    return (s.zero_stamps_total, s.future_stamps_total, s.unreadable_stamps_total,
            s.transport_skew_total, s.negative_stamps_total)


class TopicMetrics(Collector):
    """Renders the topic monitor's reports as `liquid_edge_topic_*` metrics.

    `update` and `remove` are called from the statistics thread once per update period; `collect`
    and `render_text` from the HTTP thread at scrape time. Reports are immutable and swapped in
    whole, and each topic's state is one `_Series` object, so no lock is needed beyond the
    dict's own atomic operations.
    """

    def __init__(self, robot: str, node: str = '',
                 now_ns: Optional[Callable[[], int]] = None,
                 discovered_histograms: bool = True) -> None:
        self.robot = robot
        self.node = node
        #: The clock the reports were computed with (the node's), so the last-message age is
        #: read at scrape time rather than frozen at the last statistics update.
        self._now_ns = now_ns
        #: Whether discovered (not listed) topics get the two latency histograms: 38 of a
        #: topic's 53 series (docs/METRICS.md). Listed topics always have them.
        self.discovered_histograms = discovered_histograms
        #: Why the monitor's own threads cannot be trusted now (None: they can). While it says
        #: something, every topic's status is 3 (STALE), the gauges computed by those threads are
        #: left out and liquid_edge_monitor_up is 0: never the last values, frozen.
        self.down_reason: Optional[Callable[[], Optional[str]]] = None
        self.updated_mono: Optional[float] = None     # the statistics thread's last update
        #: The node's other threads step aside while a scrape renders (`core/step_aside.py`).
        self.step_aside: Optional[StepAside] = None
        self._series: Dict[str, _Series] = {}
        #: Monitor-wide counters, written by the node's executor thread (plain int stores).
        self.refused_total = 0
        self.discovery_errors_total = 0

    def update(self, report: TopicReport) -> None:
        series = self._series.get(report.name)
        if series is None:
            series = _Series(report, report.config.listed or self.discovered_histograms)
            self._series[report.name] = series
        series.report = report
        s = report.snapshot
        if s is not None and series.hist is not None:
            series.hist[0].add(s.new_header_latency_s)
            series.hist[1].add(s.new_transport_latency_s)
        self.updated_mono = time.monotonic()

    def remove(self, name: str) -> None:
        self._series.pop(name, None)

    def tracked(self) -> int:
        """Topics that have series now."""
        return len(self._series)

    def _age(self, s: Any, now: Optional[int]) -> Optional[float]:
        """Seconds since the topic's last message, at scrape time (None before the first)."""
        if s.age_s is None:
            return None
        return s.age_s + (max(0, now - s.time_ns) / 1e9 if now is not None else 0.0)

    def render_text(self, openmetrics: bool = False) -> str:
        """The exposition of `collect()` in the text format 0.0.4 (or, with `openmetrics`, the
        OpenMetrics families without the final `# EOF`), byte for byte, written directly.

        With a thousand topics `collect()` + prometheus_client's generic formatter take about
        0.5 s per scrape on a 2-core VM (51,000 samples built as objects, then formatted one by
        one), and several seconds under load; the endpoint calls this instead (`exposition.py`):
        label strings are made once per topic, lines with plain string operations. The node's
        other threads step aside meanwhile (`step_aside`).
        """
        if self.step_aside is None:
            return self._render_text(openmetrics)
        with self.step_aside.priority():
            return self._render_text(openmetrics)

    def _render_text(self, openmetrics: bool) -> str:
        down = self.down_reason() if self.down_reason is not None else None
        now = self._now_ns() if self._now_ns is not None else None
        rows = []
        for series in list(self._series.values()):
            r = series.report
            lab = series.labels
            if lab is None:
                lab = series.labels = f'robot="{_esc(self.robot)}",topic="{_esc(r.name)}"'
            rows.append((r, lab, r.snapshot, series))
        f = _go
        out: List[str] = []

        def head(family: str) -> str:
            kind, doc, _labels = FAMILIES[family]
            name = family + ('_total' if kind == 'counter' and not openmetrics else '')
            doc = _esc_help(doc)
            if openmetrics:
                doc = doc.replace('"', r'\"')
            out.append(f'# HELP {name} {doc}\n# TYPE {name} {kind}\n')
            return family + ('_total' if kind == 'counter' else '')

        def simple(family: str, value: Callable[[Any, Any], Any], snapshot: bool = True) -> None:
            name = head(family)
            for r, lab, s, _series in rows:
                if snapshot and s is None:
                    continue
                v = value(r, s)
                if v is not None:
                    out.append(f'{name}{{{lab}}} {f(v)}\n')

        def hist(family: str, which: int, header_only: bool) -> None:
            name = head(family)
            for r, lab, s, series in rows:
                h = series.hist
                if s is None or h is None or (header_only and not r.state.has_header):
                    continue
                hh = h[which]
                pre = series.prefixes[which]
                if pre is None:
                    pre = series.prefixes[which] = tuple(
                        f'{name}_bucket{{le="{le}",{lab}}} ' for le in hh.les)
                cum = hh.cumulative()
                out.extend([p + (f'{c}.0\n' if c < _GO_PLAIN else f'{f(c)}\n')
                            for p, c in zip(pre, cum)])
                out.append(f'{name}_count{{{lab}}} {f(cum[-1])}\n'
                           f'{name}_sum{{{lab}}} {f(hh.total)}\n')

        monitor = f'node="{_esc(self.node)}",robot="{_esc(self.robot)}"'
        simple('liquid_edge_topic_messages', lambda r, s: s.messages_total)
        simple('liquid_edge_topic_bytes', lambda r, s: s.bytes_total)
        simple('liquid_edge_topic_rate_hz', lambda r, s: None if down else s.rate_hz)
        simple('liquid_edge_topic_jitter_seconds', lambda r, s: None if down else s.jitter_s)
        hist('liquid_edge_topic_latency_seconds', 0, header_only=True)
        hist('liquid_edge_topic_transport_latency_seconds', 1, header_only=False)
        simple('liquid_edge_topic_dropped_messages', lambda r, s: s.dropped_total)
        simple('liquid_edge_topic_publishers',
               lambda r, s: None if down else r.state.publishers, snapshot=False)
        simple('liquid_edge_topic_status', lambda r, s: 3 if down else r.level, snapshot=False)
        name = head('liquid_edge_topic_invalid_stamps')
        for r, lab, s, _series in rows:
            if s is None:
                continue
            for reason, n in zip(_STAMP_REASONS, _stamp_counts(s)):
                out.append(f'{name}{{reason="{reason}",{lab}}} {f(n)}\n')
        name = head('liquid_edge_topic_info')
        for r, lab, s, _series in rows:
            out.append(f'{name}{{{lab},type="{_esc(r.state.type_name or "unknown")}"}} 1.0\n')
        name = head('liquid_edge_monitor_up')
        out.append(f'{name}{{{monitor}}} {f(0 if down else 1)}\n')
        simple('liquid_edge_topic_monitor_lost_messages', lambda r, s: s.own_lost_total)
        simple('liquid_edge_topic_last_message_age_seconds',
               lambda r, s: None if down else self._age(s, now))
        name = head('liquid_edge_topic_refused')
        out.append(f'{name}{{{monitor}}} {f(self.refused_total)}\n')
        name = head('liquid_edge_topic_discovery_errors')
        out.append(f'{name}{{{monitor}}} {f(self.discovery_errors_total)}\n')
        return ''.join(out)

    def describe(self) -> Iterable[Metric]:
        return self._families().values()

    def collect(self) -> Iterator[Metric]:
        all_series = list(self._series.values())
        fams = self._families()
        down = self.down_reason() if self.down_reason is not None else None
        now = self._now_ns() if self._now_ns is not None else None
        monitor = [self.node, self.robot]
        fams['liquid_edge_monitor_up'].add_metric(monitor, 0 if down else 1)
        fams['liquid_edge_topic_refused'].add_metric(monitor, self.refused_total)
        fams['liquid_edge_topic_discovery_errors'].add_metric(monitor,
                                                              self.discovery_errors_total)
        for series in all_series:
            r = series.report
            labels = [r.name, self.robot]
            s = r.snapshot
            if not down:
                fams['liquid_edge_topic_publishers'].add_metric(labels, r.state.publishers)
            fams['liquid_edge_topic_status'].add_metric(labels, 3 if down else r.level)
            fams['liquid_edge_topic_info'].add_metric(
                [r.name, self.robot, r.state.type_name or 'unknown'], 1)
            if s is None:
                continue
            fams['liquid_edge_topic_messages'].add_metric(labels, s.messages_total)
            fams['liquid_edge_topic_bytes'].add_metric(labels, s.bytes_total)
            if s.rate_hz is not None and not down:   # unknown with < 2 messages in the window
                fams['liquid_edge_topic_rate_hz'].add_metric(labels, s.rate_hz)
            if not down:
                fams['liquid_edge_topic_jitter_seconds'].add_metric(labels, s.jitter_s)
                a = self._age(s, now)
                if a is not None:                     # absent until the first message
                    fams['liquid_edge_topic_last_message_age_seconds'].add_metric(labels, a)
            fams['liquid_edge_topic_dropped_messages'].add_metric(labels, s.dropped_total)
            fams['liquid_edge_topic_monitor_lost_messages'].add_metric(labels, s.own_lost_total)
            for reason, n in zip(_STAMP_REASONS, _stamp_counts(s)):
                fams['liquid_edge_topic_invalid_stamps'].add_metric(labels + [reason], n)
            if series.hist is None:
                continue
            h_header, h_transport = series.hist
            if r.state.has_header:
                fams['liquid_edge_topic_latency_seconds'].add_metric(
                    labels, h_header.buckets(), h_header.total)
            fams['liquid_edge_topic_transport_latency_seconds'].add_metric(
                labels, h_transport.buckets(), h_transport.total)
        return iter(fams.values())

    @staticmethod
    def _families() -> Dict[str, Any]:
        """A fresh family per name, in exposition order (gauge, counter or histogram families,
        each with its own `add_metric`: typed Any, looked up by name)."""
        return {name: _KINDS[kind](name, doc, labels=list(labels))
                for name, (kind, doc, labels) in FAMILIES.items()}


#: Integers below this are written as `<n>.0` by floatToGoString (Go's %g switches to an exponent
#: from seven digits on); the renderer writes those itself and leaves the rest to it.
_GO_PLAIN = 1_000_000


def _go(value: Any) -> str:
    """`floatToGoString`, with the common case (a small count) made without a float round trip."""
    if type(value) is int and 0 <= value < _GO_PLAIN:
        return f'{value}.0'
    return floatToGoString(value)


def _esc(value: str) -> str:
    """A label value as the text format writes it."""
    return value.replace('\\', r'\\').replace('\n', r'\n').replace('"', r'\"')


def _esc_help(text: str) -> str:
    return text.replace('\\', r'\\').replace('\n', r'\n')
