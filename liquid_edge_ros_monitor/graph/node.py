"""node_monitor: who is alive, what in the graph cannot talk, and how the host is doing.

A thin ROS node around the pure cores `tracker` (presence and restarts), `checks` (QoS and type
checks), `host` (psutil sample and thresholds) and `config` (parameters). Threads:

- the executor thread reads the graph every `period` (a handful of cheap rmw queries) and runs the
  diagnostic updater;
- the host thread samples psutil every `host.period`, because a disk on a hung mount can block;
- the metrics HTTP thread renders the latest snapshots at scrape time.

The graph timer runs on the steady clock, so checks go on while sim time is paused; durations in
the statuses ("up 12.0 s") use the node's clock, so they follow sim time.
"""
from __future__ import annotations

import re
import socket
import sys
from typing import Any, Dict, List, Optional, Set, Tuple

from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import QoSCompatibility, qos_check_compatible

from ..core.diagnostics import ERROR, OK, STALE, WARN, DiagnosticTask, Updater
from ..core.exposition import attach, detach
from ..core.live_params import LiveParameters
from ..core.params import ConfigError
from ..core.ros_params import declare_all, user_overrides
from ..core.runner import node_main
from ..core.units import join_findings
from .checks import Endpoint, GraphReport, check_graph
from .config import NODE_PARAMS, NodeMonitorConfig, parse_node_config
from .host import HostSampler, HostStatus, evaluate_host
from .metrics import NodeMonitorMetrics
from .tracker import NodeState, NodeTracker

NODE_NAME = 'node_monitor'
_LEVELS = (OK, WARN, ERROR, STALE)
_QOS_LEVEL = {QoSCompatibility.OK: 0, QoSCompatibility.WARNING: 1, QoSCompatibility.ERROR: 2}


def qos_check(pub: Any, sub: Any) -> Tuple[int, str]:
    """rclpy's QoS compatibility check as (0/1/2, reason)."""
    compat, reason = qos_check_compatible(pub, sub)
    return _QOS_LEVEL.get(compat, 1), reason


def fqn(name: str, namespace: str) -> str:
    return (namespace.rstrip('/') + '/' + name) if namespace != '/' else '/' + name


def _hidden(full_name: str) -> bool:
    """ROS hides nodes whose name starts with '_' (e.g. the ros2cli daemon)."""
    return full_name.rsplit('/', 1)[-1].startswith('_')


def _plural(n: int, noun: str) -> str:
    return f'{n} {noun}' + ('' if n == 1 else 's')


def _duration(s: Optional[float]) -> str:
    if s is None:
        return '?'
    if s < 120:
        return f'{s:.1f} s'
    if s < 7200:
        return f'{s / 60:.1f} min'
    return f'{s / 3600:.1f} h'


class NodeTask(DiagnosticTask):
    """The status of one node name: `node /ns/name`."""

    def __init__(self, monitor: 'NodeMonitor', name: str) -> None:
        super().__init__(f'node {name}')
        self._monitor = monitor
        self._name = name

    def run(self, stat: Any) -> Any:
        m = self._monitor
        s = m.tracker.nodes.get(self._name)
        if s is None:
            stat.summary(OK, 'no longer tracked')
            return stat
        now = m.now_ns()
        level, text = node_summary(s, now, m.started_ns, m.config.startup_grace,
                                   m.instances.get(self._name, 0))
        stat.summary(_LEVELS[level], text)
        stat.add('expected', 'yes' if s.expected else 'no')
        stat.add('state', 'up' if s.up else 'down' if s.ever_seen else 'never seen')
        for_s = s.for_s(now)
        stat.add('for (s)', f'{for_s:.1f}' if for_s is not None else 'unknown')
        stat.add('restarts', str(s.restarts))
        return stat


def node_summary(s: NodeState, now_ns: int, started_ns: int, grace_s: float,
                 instances: int) -> Tuple[int, str]:
    """Level and message of one node's status."""
    restarts = f', {s.restarts} restart{"s" if s.restarts != 1 else ""}' if s.restarts else ''
    if s.up:
        if instances > 1:
            return 1, f'{instances} nodes share this name (parameters and services break)'
        return 0, f'up {_duration(s.for_s(now_ns))}{restarts}' + ('' if s.expected else
                                                                  ' (not expected)')
    if not s.expected:
        return 0, f'gone for {_duration(s.for_s(now_ns))}{restarts} (not expected)'
    if s.ever_seen:
        return 2, f'down for {_duration(s.for_s(now_ns))}{restarts}'
    waited = max(0.0, (now_ns - started_ns) / 1e9)
    if waited < grace_s:
        return 1, 'not seen yet (discovery in progress)'
    return 2, f'missing: not seen in {_duration(waited)} since the monitor started'


class GraphTask(DiagnosticTask):
    """`graph`: a summary of the graph checks, with informational findings as key/values."""

    def __init__(self, monitor: 'NodeMonitor') -> None:
        super().__init__('graph')
        self._monitor = monitor

    def run(self, stat: Any) -> Any:
        self._run(stat)
        expected = len(self._monitor.config.expected_nodes)
        if not expected:
            # Said where a user looks, so an empty list is never mistaken for "all expected up".
            stat.message += '; no expected nodes configured'
        stat.add('expected nodes', str(expected) if expected else 'none configured')
        return stat

    def _run(self, stat: Any) -> None:
        report = self._monitor.graph_report
        if report is None:
            stat.summary(OK, 'graph not read yet' if self._monitor.config.graph_enabled
                         else 'graph checks disabled (graph.enabled: false)')
            return
        problems = report.problems()          # the set liquid_edge_graph_issues counts
        info = [i for i in report.issues if i.level == 0]
        if problems:
            topics = sorted({i.topic for i in problems})
            stat.summary(_LEVELS[report.level()], join_findings(
                [f'{_plural(len(problems), "problem")} on {topics[0]}', *topics[1:]]))
        else:
            stat.summary(OK, f'{report.topics} topics, no problems')
        stat.add('topics checked', str(report.topics))
        stat.add('problems', str(len(problems)))
        stat.add('QoS incompatible pairs', str(sum(report.qos_incompatibilities.values())))
        stat.add('topics without subscriber', str(len(report.unsubscribed())))
        for i in info:
            stat.add(i.topic, i.message)


class TopicIssueTask(DiagnosticTask):
    """`topic /name`: every problem the graph checks found on one topic (added while it lasts)."""

    def __init__(self, monitor: 'NodeMonitor', topic: str) -> None:
        super().__init__(f'topic {topic}')
        self._monitor = monitor
        self._topic = topic

    def run(self, stat: Any) -> Any:
        report = self._monitor.graph_report
        issues = [] if report is None else [
            i for i in report.issues if i.topic == self._topic and i.level > 0]
        if not issues:
            stat.summary(OK, 'no problems')
            return stat
        issues.sort(key=lambda i: -i.level)      # the worst leads the message
        stat.summary(_LEVELS[issues[0].level], join_findings([i.message for i in issues]))
        for n, i in enumerate(issues):
            stat.add(f'{i.kind} {n + 1}', ' -> '.join(i.nodes))
        return stat


class HostTask(DiagnosticTask):
    """One host status (`host cpu`, `host memory`, `host disk /`, ...) from the latest sample."""

    def __init__(self, monitor: 'NodeMonitor', name: str) -> None:
        super().__init__(name)
        self._monitor = monitor

    def run(self, stat: Any) -> Any:
        st: Optional[HostStatus] = self._monitor.host_statuses().get(self.getName())
        if st is None:
            stat.summary(OK, 'no sample yet')
            return stat
        stat.summary(_LEVELS[st.level], st.message)
        for k, v in st.values:
            stat.add(k, v)
        return stat


class NodeMonitor(Node):
    """Expected and discovered nodes, graph problems and host resources."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        values = declare_all(self, NODE_PARAMS)
        self.config: NodeMonitorConfig = parse_node_config(
            values, hostname=socket.gethostname(), given=user_overrides(self),
            namespace=self.get_namespace())
        self._live = LiveParameters(
            self, values, lambda v: parse_node_config(v, hostname=socket.gethostname(),
                                                      namespace=self.get_namespace()),
            dynamic=[s.name for s in NODE_PARAMS if s.dynamic])
        c = self.config
        self.started_ns = self.now_ns()
        #: The configured expected nodes and the monitor itself: it is always expected by itself
        #: (with none configured it used to list itself as 'not expected').
        self.expected_nodes = tuple(dict.fromkeys((*c.expected_nodes,
                                                   self.get_fully_qualified_name())))
        self.tracker = NodeTracker(self.expected_nodes, self.started_ns)
        self.instances: Dict[str, int] = {}     # nodes per name in the graph
        self.graph_report: Optional[GraphReport] = None
        self._topic_tasks: Set[str] = set()
        self._node_tasks: Set[str] = set(self.expected_nodes)
        self._updater = Updater(self)
        self._updater.setHardwareID(c.robot)
        for name in self.expected_nodes:
            self._updater.add(NodeTask(self, name))
        self._updater.add(GraphTask(self))
        self._metrics = NodeMonitorMetrics(c.robot)
        self._endpoint = attach(self._metrics, c.metrics_address, c.metrics_port)
        self.metrics_port: Optional[int] = (self._endpoint.port if self._endpoint is not None
                                            else None)
        self._host: Optional[HostSampler] = None
        self._host_tasks: Set[str] = set()
        if c.host.enabled:
            for name in ('host cpu', 'host memory',
                         *(f'host disk {p}' for p in c.host.disk_paths)):
                self._updater.add(HostTask(self, name))     # temperature, battery: when present
            self._host = HostSampler(c.host.disk_paths, c.host.period, self._host_failed,
                                     sensor_forget_after=c.host.sensor_forget_after)
            self._metrics.host_source = self._host.snapshot
            self._host.start()
        self._timer = self.create_timer(c.period, self.check,
                                        clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.check()
        self.get_logger().info(
            (f'watching {len(c.expected_nodes)} expected nodes' if c.expected_nodes
             else 'watching the graph, no expected nodes configured')
            + ('' if c.graph_enabled else ', graph checks off')
            + ('' if c.host.enabled else ', host checks off')
            + (f'; metrics on http://{c.metrics_address}:{self.metrics_port}/metrics'
               if self.metrics_port is not None else '; metrics endpoint disabled'))

    def now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    # ---- graph (executor thread) ---------------------------------------------------------------

    def check(self) -> None:
        """Read the graph once: nodes, then (if enabled) every topic's endpoints."""
        try:
            self._apply_live()
            self._check_nodes()
            if self.config.graph_enabled:
                self._check_graph()
            self._sync_host_tasks()
        except Exception as exc:   # a graph query failing must not stop the monitor
            self.get_logger().warning(f'graph check failed: {exc!r}', throttle_duration_sec=30.0)

    def _apply_live(self) -> None:
        """Executor thread, each period: take an accepted parameter change. New expected nodes
        are watched (ERROR while missing), nodes no longer expected are watched as any other
        (and forgotten once gone `forget_after`); host thresholds and the graph's ignore lists
        apply to the next evaluation."""
        new = self._live.take()
        if new is None:
            return
        self.config = new
        self.expected_nodes = tuple(dict.fromkeys((*new.expected_nodes,
                                                   self.get_fully_qualified_name())))
        self.tracker.set_expected(self.expected_nodes, self.now_ns())
        for name in self.expected_nodes:
            if name not in self._node_tasks:
                self._node_tasks.add(name)
                self._updater.add(NodeTask(self, name))
        self.get_logger().info(f'parameters changed ({", ".join(self._live.changes)}): applied')

    def _check_nodes(self) -> None:
        counts: Dict[str, int] = {}
        for name, ns in self.get_node_names_and_namespaces():
            full = fqn(name, ns)
            if not _hidden(full) and not self._is_tool(full):
                counts[full] = counts.get(full, 0) + 1
        gids: Dict[str, Set[bytes]] = {n: set() for n in counts}
        for info in self.get_publishers_info_by_topic('/rosout'):
            full = fqn(info.node_name, info.node_namespace)
            if full in gids:
                gids[full].add(bytes(info.endpoint_gid))
        now = self.now_ns()
        if now == 0:
            return            # sim time before the first /clock: nothing can be timed yet
        if self.started_ns == 0:
            self.started_ns = now
            self.tracker.rebase(now)
        restarted = self.tracker.observe({n: frozenset(g) for n, g in gids.items()}, now)
        for name in restarted:
            self.get_logger().warning(f'node {name} restarted')
        for name in self.tracker.forget(now, self.config.forget_after):
            self._updater.removeByName(f'node {name}')
            self._node_tasks.discard(name)
        self.instances = counts
        for name in self.tracker.nodes:
            if name not in self._node_tasks:
                self._node_tasks.add(name)
                self._updater.add(NodeTask(self, name))
        self._metrics.nodes = tuple((s.name, s.expected, s.up, s.restarts)
                                    for s in self.tracker.nodes.values())

    def _is_tool(self, full_name: str) -> bool:
        """A tool node (`tool_nodes`: ros2 CLI, rqt, our live view) gets no node status; an
        expected node always does."""
        patterns = self.config.tool_nodes
        cached = getattr(self, '_tool_patterns', None)
        if cached is None or cached[0] is not patterns:
            cached = self._tool_patterns = (patterns, [re.compile(p) for p in patterns])
        return full_name not in self.expected_nodes and any(
            r.fullmatch(full_name) for r in cached[1])

    def _sync_host_tasks(self) -> None:
        """`host temperature` and `host battery` exist while the host has such hardware (or its
        reading is stale): a VM without them gets no OK status for each, `host cpu` says it."""
        if self._host is None:
            return
        present = self.host_statuses()
        for name in ('host temperature', 'host battery'):
            if name in present and name not in self._host_tasks:
                self._host_tasks.add(name)
                self._updater.add(HostTask(self, name))
            elif name not in present and name in self._host_tasks:
                self._host_tasks.discard(name)
                self._updater.removeByName(name)

    def _check_graph(self) -> None:
        topics: Dict[str, Tuple[List[Endpoint], List[Endpoint]]] = {}
        for topic, _types in self.get_topic_names_and_types():
            pubs = [Endpoint(fqn(i.node_name, i.node_namespace), i.topic_type, i.qos_profile)
                    for i in self.get_publishers_info_by_topic(topic)]
            subs = [Endpoint(fqn(i.node_name, i.node_namespace), i.topic_type, i.qos_profile)
                    for i in self.get_subscriptions_info_by_topic(topic)]
            topics[topic] = (pubs, subs)
        report = check_graph(topics, qos_check, self.config.ignore_topics, self.config.ignore_nodes)
        problem_topics = {i.topic for i in report.issues if i.level > 0}
        for topic in problem_topics - self._topic_tasks:
            self._updater.add(TopicIssueTask(self, topic))
        for topic in self._topic_tasks - problem_topics:
            self._updater.removeByName(f'topic {topic}')
        self._topic_tasks = problem_topics
        self.graph_report = report
        self._metrics.graph = report

    # ---- host (one sampler thread per part; evaluated when read) ----------------------------------

    def host_statuses(self) -> Dict[str, HostStatus]:
        """The host statuses now: a part whose reading is too old is STALE, never its last value."""
        if self._host is None:
            return {}
        held: Optional[Dict[str, int]] = getattr(self, '_host_held', None)
        if held is None:
            held = {}                         # part -> level held (hysteresis)
            self._host_held = held
        return {s.name: s for s in evaluate_host(self._host.snapshot(), self.config.host, held)}

    def _host_failed(self, part: str, exc: BaseException) -> None:
        self.get_logger().warning(f'host {part} sample failed: {exc!r}', throttle_duration_sec=30.0)

    def destroy_node(self) -> None:
        host = getattr(self, '_host', None)
        if host is not None:
            host.stop(2.0)
        metrics = getattr(self, '_metrics', None)
        if metrics is not None:
            detach(metrics, getattr(self, '_endpoint', None))
        super().destroy_node()


def main(args: Optional[List[str]] = None, stop: Any = None) -> int:
    return node_main(NODE_NAME, NodeMonitor, (ConfigError, OSError), args, stop=stop)


if __name__ == '__main__':
    sys.exit(main())
