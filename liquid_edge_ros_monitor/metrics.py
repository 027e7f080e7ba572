"""Prometheus exposition: one HTTP endpoint per process, and the topic monitor's collector.

The collector is a prometheus_client custom `Collector`: it renders the latest immutable
`TopicReport` of each topic at scrape time, so the hot path never touches a metric object.
Latency histograms are accumulated per update period with numpy (`LatencyHistogram.add`), not per
message.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Dict, Iterable, Iterator, Optional, Tuple

import numpy as np
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily, Metric)
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from .health import TopicReport

_log = logging.getLogger(__name__)

#: Robot latencies run from tens of microseconds (shared memory) to seconds (a stalled driver).
LATENCY_BUCKETS: Tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0)


class LatencyHistogram:
    """Cumulative bucket counts and sum, fed in batches (seconds)."""

    def __init__(self, bounds: Tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = np.asarray(bounds, dtype=float)
        self._counts = np.zeros(len(bounds) + 1, dtype=np.int64)   # last is +Inf
        self.total = 0.0

    def add(self, values_s: np.ndarray) -> None:
        if values_s.size == 0:
            return
        # Prometheus buckets are "less than or equal": side='left' puts v == bound into that bound.
        idx = np.searchsorted(self.bounds, values_s, side='left')
        self._counts += np.bincount(idx, minlength=self._counts.size)
        self.total += float(values_s.sum())

    def buckets(self) -> list:
        """[(le, cumulative count), ...] ending with +Inf, as HistogramMetricFamily wants."""
        cum = np.cumsum(self._counts)
        out = [(repr(float(b)), int(c)) for b, c in zip(self.bounds, cum[:-1])]
        out.append(('+Inf', int(cum[-1])))
        return out


class MetricsEndpoint:
    """One HTTP endpoint (address, port) and its registry, with the process and platform metrics.

    Nodes attach their collectors with `attach`: nodes of one process that ask for the same port
    share one endpoint, nodes on different ports get one each (so a scrape config with one target
    per node works whether the nodes run in one process or several).
    """

    def __init__(self, address: str, port: int) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        try:
            self._server, _thread = start_http_server(port, addr=address, registry=self.registry)
        except OSError as exc:
            raise OSError(f'metrics_port {port} on {address}: {exc.strerror}') from exc
        self.address, self.port = address, self._server.server_port
        self.users = 0

    def shutdown(self) -> None:
        self._server.shutdown()
        self._server.server_close()


_endpoints: Dict[Tuple[str, int], MetricsEndpoint] = {}
_endpoints_lock = threading.Lock()


def attach(collector: Collector, address: str, port: int) -> Optional[MetricsEndpoint]:
    """Serve `collector` on address:port (started on first use; port 0 = a new endpoint on a free
    port, -1 = not served). Returns the endpoint, whose `port` is the real one."""
    if port < 0:
        return None
    with _endpoints_lock:
        ep = _endpoints.get((address, port)) if port else None
        if ep is None:
            ep = MetricsEndpoint(address, port)
            _endpoints[(address, ep.port)] = ep
            if port:
                _endpoints[(address, port)] = ep
        ep.registry.register(collector)
        ep.users += 1
        return ep


def detach(collector: Collector, ep: Optional[MetricsEndpoint]) -> None:
    """Stop serving `collector`; the endpoint closes (freeing its port) with its last user."""
    if ep is None:
        return
    with _endpoints_lock:
        try:
            ep.registry.unregister(collector)
        except KeyError:
            return
        ep.users -= 1
        if ep.users == 0:
            for key in [k for k, v in _endpoints.items() if v is ep]:
                del _endpoints[key]
            ep.shutdown()


class TopicMetrics(Collector):
    """Renders the topic monitor's reports as `liquid_edge_topic_*` metrics.

    `update` is called from the statistics thread once per update period; `collect` from the HTTP
    thread at scrape time. Reports are immutable and swapped in whole, so no lock is needed beyond
    the dict's own atomic assignment.
    """

    def __init__(self, robot: str) -> None:
        self.robot = robot
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

    def remove(self, name: str) -> None:
        self._reports.pop(name, None)
        self._hist.pop(name, None)

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterator[Metric]:
        reports = list(self._reports.values())
        fams = self._families()
        (messages, bytes_, rate, jitter, latency, transport, dropped, pubs, status, stamps,
         info) = fams
        for r in reports:
            labels = [r.name, self.robot]
            s = r.snapshot
            pubs.add_metric(labels, r.state.publishers)
            status.add_metric(labels, r.level)
            info.add_metric([r.name, self.robot, r.state.type_name or 'unknown'], 1)
            if s is None:
                continue
            messages.add_metric(labels, s.messages_total)
            bytes_.add_metric(labels, s.bytes_total)
            if s.rate_hz is not None:        # unknown with < 2 messages in the window
                rate.add_metric(labels, s.rate_hz)
            jitter.add_metric(labels, s.jitter_s)
            dropped.add_metric(labels, s.dropped_total)
            for reason, n in (('zero', s.zero_stamps_total), ('future', s.future_stamps_total),
                              ('unreadable', s.unreadable_stamps_total)):
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
                                'Messages whose header.stamp was zero, in the future or unreadable.',
                                labels=lab + ['reason']),
            GaugeMetricFamily('liquid_edge_topic_info', 'The topic\'s message type (value is 1).',
                              labels=lab + ['type']),
        )


class NodeMonitorMetrics(Collector):
    """Renders the node monitor's latest view: node presence, graph issues, host resources.

    The node swaps in immutable snapshots (`nodes`, `graph`, `host`) whole; `collect` reads them at
    scrape time.
    """

    def __init__(self, robot: str) -> None:
        self.robot = robot
        self.nodes: Tuple[Tuple[str, bool, bool, int], ...] = ()   # (name, expected, up, restarts)
        self.graph: Any = None          # graph.GraphReport
        self.host: Any = None           # host.HostSample

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterator[Metric]:
        fams = self._families()
        (up, restarts, discovered, qos, issues, cpu, load, mem_used, mem_total, mem_ratio,
         disk_free, disk_ratio, temp, battery, available) = fams
        r = self.robot
        nodes = self.nodes
        for name, expected, is_up, n_restarts in nodes:
            up.add_metric([name, 'true' if expected else 'false', r], 1 if is_up else 0)
            restarts.add_metric([name, r], n_restarts)
        discovered.add_metric([r], sum(1 for n in nodes if n[2]))
        graph = self.graph
        if graph is not None:
            for topic, n in graph.qos_incompatibilities.items():
                qos.add_metric([topic, r], n)
            for kind_topic in sorted({(i.topic, i.kind) for i in graph.issues}):
                issues.add_metric([kind_topic[0], kind_topic[1], r], 1)
        s = self.host
        if s is not None:
            cpu.add_metric(['total', r], s.cpu_total)
            for i, v in enumerate(s.cpu_per_core):
                cpu.add_metric([str(i), r], v)
            if s.load is not None:
                for period, v in zip(('1m', '5m', '15m'), s.load):
                    load.add_metric([period, r], v)
            mem_used.add_metric([r], s.memory_used)
            mem_total.add_metric([r], s.memory_total)
            mem_ratio.add_metric([r], s.memory_ratio)
            for path, d in s.disks.items():
                if not isinstance(d, str):
                    disk_free.add_metric([path, r], d.free)
                    disk_ratio.add_metric([path, r], d.free_ratio)
            for sensor, t in (s.temperatures or {}).items():
                temp.add_metric([sensor, r], t)
            if s.battery is not None:
                battery.add_metric([r], s.battery[0])
            available.add_metric(['temperature', r], 1 if s.temperatures else 0)
            available.add_metric(['battery', r], 1 if s.battery is not None else 0)
        return iter(fams)

    @staticmethod
    def _families() -> Tuple[Metric, ...]:
        return (
            GaugeMetricFamily('liquid_edge_node_up', '1 while the node is in the ROS graph.',
                              labels=['node', 'expected', 'robot']),
            CounterMetricFamily('liquid_edge_node_restarts',
                                'Times the node left the graph and came back (or was replaced).',
                                labels=['node', 'robot']),
            GaugeMetricFamily('liquid_edge_nodes_discovered', 'Nodes in the ROS graph.',
                              labels=['robot']),
            GaugeMetricFamily('liquid_edge_qos_incompatibilities',
                              'Publisher/subscription pairs on the topic whose QoS cannot match.',
                              labels=['topic', 'robot']),
            GaugeMetricFamily('liquid_edge_graph_issues',
                              'Current graph issues (value 1): qos_incompatible, multiple_types, '
                              'no_publishers, no_subscribers.', labels=['topic', 'kind', 'robot']),
            GaugeMetricFamily('liquid_edge_host_cpu_usage_ratio',
                              'CPU usage 0..1, total or per core.', labels=['cpu', 'robot']),
            GaugeMetricFamily('liquid_edge_host_load_average', 'System load average.',
                              labels=['period', 'robot']),
            GaugeMetricFamily('liquid_edge_host_memory_used_bytes',
                              'Memory in use (total minus available).', labels=['robot']),
            GaugeMetricFamily('liquid_edge_host_memory_total_bytes', 'Physical memory.',
                              labels=['robot']),
            GaugeMetricFamily('liquid_edge_host_memory_usage_ratio', 'Memory used / total.',
                              labels=['robot']),
            GaugeMetricFamily('liquid_edge_host_disk_free_bytes',
                              'Free bytes on the file system of each configured path.',
                              labels=['path', 'robot']),
            GaugeMetricFamily('liquid_edge_host_disk_free_ratio', 'Free / total bytes.',
                              labels=['path', 'robot']),
            GaugeMetricFamily('liquid_edge_host_temperature_celsius',
                              'Temperature of each sensor the host reports.',
                              labels=['sensor', 'robot']),
            GaugeMetricFamily('liquid_edge_host_battery_ratio', 'Battery charge 0..1.',
                              labels=['robot']),
            GaugeMetricFamily('liquid_edge_host_sensor_available',
                              'Whether the host reports the sensor (1) or has none (0).',
                              labels=['sensor', 'robot']),
        )


#: Inference steps run from microseconds (a small jitted cell) to a control period.
INFERENCE_BUCKETS: Tuple[float, ...] = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0)


class InferenceMetrics(Collector):
    """Renders the inference node's counters and gauges (`liquid_edge_inference_*`).

    The node owns the numbers (plain attributes written by its callbacks); latency histograms are
    fed in batches by `add_latencies` from the node's update timer, not per message.
    """

    def __init__(self, robot: str, node: str) -> None:
        self.labels = [robot, node]
        self.hist = {'forward': LatencyHistogram(INFERENCE_BUCKETS),
                     'callback': LatencyHistogram(INFERENCE_BUCKETS)}
        self.inferences = 0
        self.errors: Dict[str, int] = {'non_finite_input': 0, 'non_finite_output': 0,
                                       'bad_input': 0}
        self.jit_compilations = 0
        self.deadline_misses = 0
        self.drift: Optional[float] = None
        self.state_norm: Optional[float] = None
        self.accuracy: Optional[float] = None
        self.energy: Dict[str, float] = {}      # source -> joules
        self.power: Dict[str, float] = {}       # source -> watts

    def add_latencies(self, stage: str, values_s: np.ndarray) -> None:
        self.hist[stage].add(values_s)

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterator[Metric]:
        fams = self._families()
        (latency, inferences, errors, jit, misses, drift, norm, accuracy, energy, power) = fams
        lab = self.labels
        for stage, h in self.hist.items():
            latency.add_metric([stage] + lab, h.buckets(), h.total)
        inferences.add_metric(lab, self.inferences)
        for reason, n in list(self.errors.items()):
            errors.add_metric([reason] + lab, n)
        jit.add_metric(lab, self.jit_compilations)
        misses.add_metric(lab, self.deadline_misses)
        for fam, v in ((drift, self.drift), (norm, self.state_norm), (accuracy, self.accuracy)):
            if v is not None:
                fam.add_metric(lab, v)
        for source, j in list(self.energy.items()):
            energy.add_metric([source] + lab, j)
        for source, w in list(self.power.items()):
            power.add_metric([source] + lab, w)
        return iter(fams)

    @staticmethod
    def _families() -> Tuple[Metric, ...]:
        lab = ['robot', 'node']
        return (
            HistogramMetricFamily('liquid_edge_inference_latency_seconds',
                                  'Inference latency: forward (the jitted step) and callback '
                                  '(input received to command published).',
                                  labels=['stage'] + lab),
            CounterMetricFamily('liquid_edge_inferences', 'Network steps run.', labels=lab),
            CounterMetricFamily('liquid_edge_inference_errors',
                                'Inputs or outputs rejected: non_finite_input, non_finite_output, '
                                'bad_input.', labels=['reason'] + lab),
            CounterMetricFamily('liquid_edge_jit_compilations',
                                'XLA compilations in this process (flat after warm-up).',
                                labels=lab),
            CounterMetricFamily('liquid_edge_inference_deadline_misses',
                                'Callbacks that took longer than the control period.', labels=lab),
            GaugeMetricFamily('liquid_edge_inference_input_drift',
                              'Mean |z-score| of recent inputs against the training statistics '
                              '(about 0.8 in distribution).', labels=lab),
            GaugeMetricFamily('liquid_edge_inference_hidden_state_norm',
                              'L2 norm of the hidden state.', labels=lab),
            GaugeMetricFamily('liquid_edge_model_accuracy',
                              'Share of recent outputs within tolerance of the ground truth.',
                              labels=lab),
            CounterMetricFamily('liquid_edge_inference_energy_joules',
                                'Energy: source="rapl" measured (CPU package counter), '
                                'source="estimate" from the MAC-count model.',
                                labels=['source'] + lab),
            GaugeMetricFamily('liquid_edge_inference_power_watts',
                              'Energy rate over the last update period, by source.',
                              labels=['source'] + lab),
        )
