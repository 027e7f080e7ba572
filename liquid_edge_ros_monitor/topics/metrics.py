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


class TopicMetrics(Collector):
    """Renders the topic monitor's reports as `liquid_edge_topic_*` metrics.

    `update` is called from the statistics thread once per update period; `collect` from the HTTP
    thread at scrape time. Reports are immutable and swapped in whole, so no lock is needed beyond
    the dict's own atomic assignment.
    """

    def __init__(self, robot: str, node: str = '',
                 now_ns: Optional[Callable[[], int]] = None) -> None:
        self.robot = robot
        self.node = node
        #: The clock the reports were computed with (the node's), so the last-message age is
        #: read at scrape time rather than frozen at the last statistics update.
        self._now_ns = now_ns
        self._labels: Dict[str, str] = {}       # topic -> 'robot="...",topic="..."'
        #: (topic, histogram) -> each bucket line up to its value, made once per topic.
        self._bucket_prefix: Dict[Tuple[str, int], Tuple[str, ...]] = {}
        #: Why the monitor's own threads cannot be trusted now (None: they can). While it says
        #: something, every topic's status is 3 (STALE), the gauges computed by those threads are
        #: left out and liquid_edge_monitor_up is 0: never the last values, frozen.
        self.down_reason: Optional[Callable[[], Optional[str]]] = None
        self.updated_mono: Optional[float] = None     # the statistics thread's last update
        #: The node's other threads step aside while a scrape renders (`core/step_aside.py`).
        self.step_aside: Optional[StepAside] = None
        self._reports: Dict[str, TopicReport] = {}
        self._hist: Dict[str, Tuple[LatencyHistogram, LatencyHistogram]] = {}

    def update(self, report: TopicReport) -> None:
        name = report.name
        hist = self._hist.get(name)
        if hist is None:
            hist = self._hist[name] = (LatencyHistogram(), LatencyHistogram())
        s = report.snapshot
        if s is not None:
            hist[0].add(s.new_header_latency_s)
            hist[1].add(s.new_transport_latency_s)
        self._reports[name] = report
        self.updated_mono = time.monotonic()

    def remove(self, name: str) -> None:
        self._reports.pop(name, None)
        self._hist.pop(name, None)
        self._labels.pop(name, None)
        self._bucket_prefix.pop((name, 0), None)
        self._bucket_prefix.pop((name, 1), None)

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
        for r in list(self._reports.values()):
            lab = self._labels.get(r.name)
            if lab is None:
                lab = self._labels[r.name] = f'robot="{_esc(self.robot)}",topic="{_esc(r.name)}"'
            rows.append((r, lab, r.snapshot, self._hist.get(r.name)))
        f = _go
        fams = self._families()
        out: List[str] = []

        def head(i: int) -> str:
            fam = fams[i]
            name = fam.name + ('_total' if fam.type == 'counter' and not openmetrics else '')
            doc = _esc_help(fam.documentation)
            if openmetrics:
                doc = doc.replace('"', r'\"')
            out.append(f'# HELP {name} {doc}\n# TYPE {name} {fam.type}\n')
            return fam.name + ('_total' if fam.type == 'counter' else '')

        def simple(i: int, value: Callable[[Any, Any], Any], snapshot: bool = True) -> None:
            name = head(i)
            for r, lab, s, _h in rows:
                if snapshot and s is None:
                    continue
                v = value(r, s)
                if v is not None:
                    out.append(f'{name}{{{lab}}} {f(v)}\n')

        def hist(i: int, which: int, header_only: bool) -> None:
            name = head(i)
            for r, lab, s, h in rows:
                if s is None or h is None or (header_only and not r.state.has_header):
                    continue
                hh = h[which]
                key = (r.name, which)
                pre = self._bucket_prefix.get(key)
                if pre is None:
                    pre = self._bucket_prefix[key] = tuple(
                        f'{name}_bucket{{le="{le}",{lab}}} ' for le in hh.les)
                cum = hh.cumulative()
                out.extend([p + (f'{c}.0\n' if c < _GO_PLAIN else f'{f(c)}\n')
                            for p, c in zip(pre, cum)])
                out.append(f'{name}_count{{{lab}}} {f(cum[-1])}\n'
                           f'{name}_sum{{{lab}}} {f(hh.total)}\n')

        simple(0, lambda r, s: s.messages_total)
        simple(1, lambda r, s: s.bytes_total)
        simple(2, lambda r, s: None if down else s.rate_hz)
        simple(3, lambda r, s: None if down else s.jitter_s)
        hist(4, 0, header_only=True)
        hist(5, 1, header_only=False)
        simple(6, lambda r, s: s.dropped_total)
        simple(7, lambda r, s: None if down else r.state.publishers, snapshot=False)
        simple(8, lambda r, s: 3 if down else r.level, snapshot=False)
        name = head(9)
        for r, lab, s, _h in rows:
            if s is None:
                continue
            for reason, n in (('zero', s.zero_stamps_total), ('future', s.future_stamps_total),
                              ('unreadable', s.unreadable_stamps_total),
                              ('transport_skew', s.transport_skew_total),
                              ('negative', s.negative_stamps_total)):
                out.append(f'{name}{{reason="{reason}",{lab}}} {f(n)}\n')
        name = head(10)
        for r, lab, s, _h in rows:
            out.append(f'{name}{{{lab},type="{_esc(r.state.type_name or "unknown")}"}} 1.0\n')
        name = head(11)
        out.append(f'{name}{{node="{_esc(self.node)}",robot="{_esc(self.robot)}"}} '
                   f'{f(0 if down else 1)}\n')
        simple(12, lambda r, s: s.own_lost_total)
        simple(13, lambda r, s: None if down else self._age(s, now))
        return ''.join(out)

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterator[Metric]:
        reports = list(self._reports.values())
        fams = self._families()
        (messages, bytes_, rate, jitter, latency, transport, dropped, pubs, status, stamps,
         info, up, own_lost, age) = fams
        down = self.down_reason() if self.down_reason is not None else None
        now = self._now_ns() if self._now_ns is not None else None
        up.add_metric([self.node, self.robot], 0 if down else 1)
        for r in reports:
            labels = [r.name, self.robot]
            s = r.snapshot
            if not down:
                pubs.add_metric(labels, r.state.publishers)
            status.add_metric(labels, 3 if down else r.level)
            info.add_metric([r.name, self.robot, r.state.type_name or 'unknown'], 1)
            if s is None:
                continue
            messages.add_metric(labels, s.messages_total)
            bytes_.add_metric(labels, s.bytes_total)
            if s.rate_hz is not None and not down:   # unknown with < 2 messages in the window
                rate.add_metric(labels, s.rate_hz)
            if not down:
                jitter.add_metric(labels, s.jitter_s)
                a = self._age(s, now)
                if a is not None:                     # absent until the first message
                    age.add_metric(labels, a)
            dropped.add_metric(labels, s.dropped_total)
            own_lost.add_metric(labels, s.own_lost_total)
            for reason, n in (('zero', s.zero_stamps_total), ('future', s.future_stamps_total),
                              ('unreadable', s.unreadable_stamps_total),
                              ('transport_skew', s.transport_skew_total),
                              ('negative', s.negative_stamps_total)):
                stamps.add_metric(labels + [reason], n)
            hists = self._hist.get(r.name)
            if hists is None:   # removed while we were collecting
                continue
            h_header, h_transport = hists
            if r.state.has_header:
                latency.add_metric(labels, h_header.buckets(), h_header.total)
            transport.add_metric(labels, h_transport.buckets(), h_transport.total)
        return iter(fams)

    @staticmethod
    def _families() -> Tuple[Metric, ...]:
        lab = ['topic', 'robot']
        return (
            CounterMetricFamily('liquid_edge_topic_messages', 'Messages received on the topic.',
                                labels=lab),
            CounterMetricFamily('liquid_edge_topic_bytes', 'Serialized bytes received on the topic.',
                                labels=lab),
            GaugeMetricFamily('liquid_edge_topic_rate_hz',
                              'Message rate over the sliding window, Hz.', labels=lab),
            GaugeMetricFamily('liquid_edge_topic_jitter_seconds',
                              'Standard deviation of the inter-message period over the window.',
                              labels=lab),
            HistogramMetricFamily('liquid_edge_topic_latency_seconds',
                                  'Receipt time minus header.stamp (types with a std_msgs/Header).',
                                  labels=lab),
            HistogramMetricFamily('liquid_edge_topic_transport_latency_seconds',
                                  'DDS source timestamp to reception timestamp.', labels=lab),
            CounterMetricFamily('liquid_edge_topic_dropped_messages',
                                'Messages missing from the publication sequence (one publisher).',
                                labels=lab),
            GaugeMetricFamily('liquid_edge_topic_publishers', 'Publishers on the topic.',
                              labels=lab),
            GaugeMetricFamily('liquid_edge_topic_status',
                              'Diagnostic level: 0 OK, 1 WARN, 2 ERROR, 3 STALE.', labels=lab),
            CounterMetricFamily('liquid_edge_topic_invalid_stamps',
                                'Messages whose header.stamp was zero, negative, in the future or '
                                'unreadable; '
                                'transport_skew: DDS source stamp after the reception stamp '
                                '(clock skew between hosts; not observed as latency).',
                                labels=lab + ['reason']),
            GaugeMetricFamily('liquid_edge_topic_info', 'The topic\'s message type (value is 1).',
                              labels=lab + ['type']),
            GaugeMetricFamily('liquid_edge_monitor_up',
                              '1 while the monitor\'s receiver and statistics threads run and '
                              'update; 0 when one died or stalled (every topic status is then 3).',
                              labels=['node', 'robot']),
            CounterMetricFamily('liquid_edge_topic_monitor_lost_messages',
                                'Messages the monitor itself lost: its reader queue was full '
                                '(it fell behind) and overwrote them. Not the topic\'s drops.',
                                labels=lab),
            GaugeMetricFamily('liquid_edge_topic_last_message_age_seconds',
                              'Seconds since the last message arrived (absent before the first).',
                              labels=lab),
        )


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
