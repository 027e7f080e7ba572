"""The node monitor's Prometheus collector (`liquid_edge_node_*`, `_graph_*`, `_host_*`)."""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, NamedTuple, Optional, Tuple

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class _Families(NamedTuple):
    """One scrape's metric families, by name (their order is the exposition's)."""
    up: GaugeMetricFamily
    restarts: CounterMetricFamily
    discovered: GaugeMetricFamily
    qos: GaugeMetricFamily
    issues: GaugeMetricFamily
    cpu: GaugeMetricFamily
    load: GaugeMetricFamily
    mem_used: GaugeMetricFamily
    mem_total: GaugeMetricFamily
    mem_ratio: GaugeMetricFamily
    disk_free: GaugeMetricFamily
    disk_ratio: GaugeMetricFamily
    temp: GaugeMetricFamily
    battery: GaugeMetricFamily
    available: GaugeMetricFamily
    age: GaugeMetricFamily
    unsubscribed: GaugeMetricFamily


class NodeMonitorMetrics(Collector):
    """Renders the node monitor's latest view: node presence, graph issues, host resources.

    The node swaps in immutable snapshots (`nodes`, `graph`) whole; `collect` reads them at
    scrape time, and takes the host sample then from `host_source`: a part without a fresh reading
    is left out (absent, not frozen), and every part read so far shows its sample age.
    """

    def __init__(self, robot: str) -> None:
        self.robot = robot
        self.nodes: Tuple[Tuple[str, bool, bool, int], ...] = ()   # (name, expected, up, restarts)
        self.graph: Any = None          # graph.GraphReport
        self.host_source: Optional[Callable[[], Any]] = None     # -> host.HostSample

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterator[Metric]:
        f = self._families()
        r = self.robot
        nodes = self.nodes
        for name, expected, is_up, n_restarts in nodes:
            f.up.add_metric([name, 'true' if expected else 'false', r], 1 if is_up else 0)
            f.restarts.add_metric([name, r], n_restarts)
        f.discovered.add_metric([r], sum(1 for n in nodes if n[2]))
        graph = self.graph
        if graph is not None:
            for topic, n in graph.qos_incompatibilities.items():
                f.qos.add_metric([topic, r], n)
            # The problems /diagnostics shows, nothing else: an alert on this metric and rqt
            # agree (a topic published without a subscriber is informational).
            for kind_topic in sorted({(i.topic, i.kind) for i in graph.problems()}):
                f.issues.add_metric([kind_topic[0], kind_topic[1], r], 1)
            f.unsubscribed.add_metric([r], len(graph.unsubscribed()))
        s = self.host_source() if self.host_source is not None else None
        if s is not None:
            if s.cpu_total is not None:
                f.cpu.add_metric(['total', r], s.cpu_total)
                for i, v in enumerate(s.cpu_per_core):
                    f.cpu.add_metric([str(i), r], v)
            if s.load is not None:
                for period, v in zip(('1m', '5m', '15m'), s.load):
                    f.load.add_metric([period, r], v)
            if s.memory_total is not None:
                f.mem_used.add_metric([r], s.memory_used)
                f.mem_total.add_metric([r], s.memory_total)
                f.mem_ratio.add_metric([r], s.memory_ratio)
            for path, d in s.disks.items():
                if not isinstance(d, str):
                    f.disk_free.add_metric([path, r], d.free)
                    f.disk_ratio.add_metric([path, r], d.free_ratio)
            for sensor, t in (s.temperatures or {}).items():
                f.temp.add_metric([sensor, r], t)
            if s.battery is not None:
                f.battery.add_metric([r], s.battery[0])
            if s.fresh('temperature'):
                f.available.add_metric(['temperature', r], 1 if s.temperatures else 0)
            if s.fresh('battery'):
                f.available.add_metric(['battery', r], 1 if s.battery is not None else 0)
            for part, a in s.ages.items():
                f.age.add_metric([part, r], a)
        return iter(f)

    @staticmethod
    def _families() -> _Families:
        return _Families(
            up=GaugeMetricFamily(
                'liquid_edge_node_up', '1 while the node is in the ROS graph.',
                labels=['node', 'expected', 'robot']),
            restarts=CounterMetricFamily(
                'liquid_edge_node_restarts',
                'Times the node left the graph and came back (or was replaced).',
                labels=['node', 'robot']),
            discovered=GaugeMetricFamily(
                'liquid_edge_nodes_discovered', 'Nodes in the ROS graph.',
                labels=['robot']),
            qos=GaugeMetricFamily(
                'liquid_edge_qos_incompatibilities',
                'Publisher/subscription pairs on the topic whose QoS cannot match.',
                labels=['topic', 'robot']),
            issues=GaugeMetricFamily(
                'liquid_edge_graph_issues',
                'Current graph problems (value 1), the ones /diagnostics shows: '
                'qos_incompatible, multiple_types, no_publishers.',
                labels=['topic', 'kind', 'robot']),
            cpu=GaugeMetricFamily(
                'liquid_edge_host_cpu_usage_ratio',
                'CPU usage 0..1, total or per core.', labels=['cpu', 'robot']),
            load=GaugeMetricFamily(
                'liquid_edge_host_load_average', 'System load average.',
                labels=['period', 'robot']),
            mem_used=GaugeMetricFamily(
                'liquid_edge_host_memory_used_bytes',
                'Memory in use (total minus available).', labels=['robot']),
            mem_total=GaugeMetricFamily(
                'liquid_edge_host_memory_total_bytes', 'Physical memory.',
                labels=['robot']),
            mem_ratio=GaugeMetricFamily(
                'liquid_edge_host_memory_usage_ratio', 'Memory used / total.',
                labels=['robot']),
            disk_free=GaugeMetricFamily(
                'liquid_edge_host_disk_free_bytes',
                'Free bytes on the file system of each configured path.',
                labels=['path', 'robot']),
            disk_ratio=GaugeMetricFamily(
                'liquid_edge_host_disk_free_ratio', 'Free / total bytes.',
                labels=['path', 'robot']),
            temp=GaugeMetricFamily(
                'liquid_edge_host_temperature_celsius',
                'Temperature of each sensor the host reports.',
                labels=['sensor', 'robot']),
            battery=GaugeMetricFamily(
                'liquid_edge_host_battery_ratio', 'Battery charge 0..1.',
                labels=['robot']),
            available=GaugeMetricFamily(
                'liquid_edge_host_sensor_available',
                'Whether the host reports the sensor (1) or has none (0).',
                labels=['sensor', 'robot']),
            age=GaugeMetricFamily(
                'liquid_edge_host_sample_age_seconds',
                'Seconds since each host part (cpu, memory, disk <path>, temperature, '
                'battery) was last read; a part older than two host periods is '
                'stale and its values are absent.', labels=['part', 'robot']),
            unsubscribed=GaugeMetricFamily(
                'liquid_edge_graph_unsubscribed_topics',
                'Published topics that no (not ignored) node subscribes to; '
                'informational, not a graph issue.', labels=['robot']),
        )
