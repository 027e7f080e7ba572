"""topic_monitor: per-topic rate, jitter, latency, bandwidth and drops, on /diagnostics and Prometheus.

A thin ROS node around the pure cores: `config` (parameters), `stats` (windows), `health` (levels),
`cdr` (header stamps), `metrics` (its Prometheus collector). Threads:

- the executor thread runs graph discovery, parameter services and the diagnostic updater;
- the `RawReceiver` thread takes raw messages (with their MessageInfo) and, once per
  `update_period`, detaches every window's new rows;
- the statistics thread computes each topic's statistics from them into an immutable
  `TopicReport` (numpy releases the GIL for much of that, so receiving goes on meanwhile);
- the metrics HTTP thread renders the latest reports at scrape time.
"""
from __future__ import annotations

import queue
import socket
import sys
import threading
import time
import traceback
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple, cast

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.clock import Clock, ClockType, ROSClock
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..core.diagnostics import ERROR, OK, STALE, WARN, DiagnosticTask, Updater
from ..core.exposition import attach, detach
from ..core.heap import fix_mmap_threshold
from ..core.live_params import LiveParameters
from ..core.levels import LEVEL_NAMES
from ..core.msg_info import SEQUENCE_LIMIT
from ..core.msg_types import import_message_type, starts_with_header
from ..core.params import ConfigError
from ..core.ros_params import declare_all, user_overrides
from ..core.runner import node_main
from ..core.step_aside import StepAside
from .cdr import header_stamp_ns
from .config import (GLOBAL_PARAMS, MonitorConfig, TopicConfig, parse_config, path_param_specs,
                     read_globals, staged,
                     topic_param_specs)
from .health import TopicReport, TopicState, key_values, report
from .metrics import TopicMetrics
from .path_metrics import PathMetrics, PathTask
from .paths import PathConfig, PathMatcher, PathWindow
from .receiver import BATCH_S, RawReceiver
from .stats import MISSING, SEQ_RESET, TopicWindow

NODE_NAME = 'topic_monitor'
NS_PER_S = 1_000_000_000
#: Discovery reads every topic's publishers in full (types, QoS: 50 us and a dozen Python objects
#: each) up to this many topics; beyond, a topic is read in full when its publisher count or
#: types change, while it has a problem or no subscription, and otherwise every
#: `REFRESH_ROLL` periods in turn. A change of QoS alone (same count, same type) is then seen
#: within REFRESH_ROLL periods instead of one; the count costs a third of the full read.
REFRESH_ALL_UP_TO = 100
REFRESH_ROLL = 10
_LEVELS = (OK, WARN, ERROR, STALE)


class _TimeBase:
    """Whether arrival times come from the node clock (sim time) or DDS reception stamps."""

    sim = False


class TopicTrack:
    """One monitored topic: thresholds, subscription, statistics window and latest report."""

    def __init__(self, name: str, config: TopicConfig) -> None:
        self.name = name
        self.config = config
        self.type_name = ''
        self.has_header = False
        self.window: Optional[TopicWindow] = None
        self.subscription: Any = None
        self.best_effort: Optional[bool] = None
        self.publishers = 0
        self.problem: Optional[str] = None
        self.subscribed_ns: Optional[int] = None
        self.updated_mono: Optional[float] = None   # steady clock: ticks are paced by it
        self.publisher_epoch = 0      # bumped (executor thread) when the publisher count changes
        self.applied_epoch = 0        # the epoch the receiver thread last handed over
        self.updated_ns: Optional[int] = None
        self.report: Optional[TopicReport] = None
        self.unpublished_since_ns: Optional[int] = None   # steady clock; None while published
        self.forgotten = False
        self.graph_types: Tuple[str, ...] = ()   # the types the graph gave at the last refresh
        self.slot = 0     # its turn for a full refresh among many topics (fixed for its life)
        #: (arrival ns, stamp ns or None) hooks of the black-box paths this topic is part of
        #: (receiver thread); a topic on a path is never forgotten.
        self.path_hooks: List[Callable[[int, Optional[int]], None]] = []
        #: The level each threshold check held at the last report (statistics thread): the
        #: hysteresis of health.evaluate.
        self.held: Dict[str, int] = {}

    def update(self, now_ns: int, window: Optional[TopicWindow], pending: Any,
               publishers_changed: bool) -> TopicReport:
        """Recompute the report (statistics thread) from the rows the receiver detached."""
        snap = None
        if window is not None:
            if publishers_changed:
                window.reset_sequence()
            snap = window.snapshot(now_ns, single_publisher=self.publishers == 1,
                                   pending=pending)
        silent = snap.age_s if snap is not None else None
        if silent is None and self.subscribed_ns is not None:
            silent = (now_ns - self.subscribed_ns) / 1e9
        state = TopicState(type_name=self.type_name, publishers=self.publishers,
                           problem=self.problem, silent_for_s=silent,
                           subscribed=self.subscription is not None, has_header=self.has_header)
        self.report = report(self.name, self.config, state, snap, self.held)
        self.updated_ns = now_ns
        self.updated_mono = time.monotonic()
        return self.report


class TopicTask(DiagnosticTask):
    """The /diagnostics status of one topic."""

    def __init__(self, track: TopicTrack, down: Callable[[], Optional[str]],
                 stall_after_s: float) -> None:
        super().__init__(track.name)
        self._track = track
        self._down = down
        self._stall_s = stall_after_s

    def run(self, stat: Any) -> Any:
        down = self._down()
        if down:
            stat.summary(STALE, f'{down}: the monitor stopped updating this topic')
            return stat
        r = self._track.report
        if r is None:
            stat.summary(OK, 'starting')
            return stat
        updated = self._track.updated_mono
        # Steady clock on both sides: ticks are paced by it, and sim time may run at any speed.
        if updated is not None and time.monotonic() - updated > self._stall_s:
            # The receiver or statistics thread stopped: say so rather than repeat old news.
            stat.summary(STALE, 'statistics stalled: the monitor stopped updating this topic')
            return stat
        stat.summary(_LEVELS[r.level], r.message)
        for key, value in key_values(r):
            stat.add(key, value)
        return stat


class DiscoveredSummaryTask(DiagnosticTask):
    """`discovered topics` (with `discovery.diagnostics: summary`): one status for every
    discovered topic: the worst level, counts per level and the ten worst topics by name."""

    SHOWN = 10

    def __init__(self, monitor: 'TopicMonitor') -> None:
        super().__init__('discovered topics')
        self._monitor = monitor

    def run(self, stat: Any) -> Any:
        down = self._monitor.down_reason()
        tracks = [t for t in list(self._monitor._tracks.values()) if not t.config.listed]
        if down:
            stat.summary(STALE, f'{down}: the monitor stopped updating {len(tracks)} topics')
            return stat
        reports = [t.report for t in tracks if t.report is not None]
        counts = [sum(1 for r in reports if r.level == lvl) for lvl in range(4)]
        worst = sorted((r for r in reports if r.level > 0), key=lambda r: (-r.level, r.name))
        level = max((r.level for r in reports), default=0)
        text = ', '.join(f'{n} {name}' for n, name in zip(counts, LEVEL_NAMES) if n)
        stat.summary(_LEVELS[level], f'{len(tracks)} topics' + (f': {text}' if text else ''))
        for r in worst[:self.SHOWN]:
            stat.add(r.name, f'{LEVEL_NAMES[r.level]} {r.message}')
        if len(worst) > self.SHOWN:
            stat.add('more', f'{len(worst) - self.SHOWN} more above OK (metrics have them all)')
        return stat


class DiscoveryTask(DiagnosticTask):
    """`discovery`: how many topics discovery tracks against `discovery.max_topics`, the topics it
    refused beyond that (WARN, named), and a discovery pass that failed (WARN, with its error)."""

    SHOWN = 10

    def __init__(self, monitor: 'TopicMonitor') -> None:
        super().__init__('discovery')
        self._monitor = monitor

    def run(self, stat: Any) -> Any:
        m = self._monitor
        limit = m.config.discovery.max_topics
        tracked = m.discovered_count()
        refused = sorted(m.refused)
        errors = m.discovery_errors()
        stat.summary(OK, f'{tracked} topic{"" if tracked == 1 else "s"} discovered (limit {limit})')
        if refused:
            shown = ', '.join(refused[:self.SHOWN])
            more = f' and {len(refused) - self.SHOWN} more' if len(refused) > self.SHOWN else ''
            stat.mergeSummary(WARN, f'discovery.max_topics ({limit}) reached: '
                              f'{len(refused)} topics refused: {shown}{more}')
        failing = m.discovery_failing
        if failing:
            stat.mergeSummary(WARN, f'discovery failed: {failing}')
        stat.add('discovered topics', str(tracked))
        stat.add('max_topics', str(limit))
        stat.add('refused topics', str(len(refused)))
        stat.add('failed discovery passes', str(errors))
        for i, name in enumerate(refused[:self.SHOWN]):
            stat.add(f'refused {i + 1}', name)
        return stat


class TopicMonitor(Node):
    """Measures every listed or discovered topic from raw subscriptions."""

    def __init__(self, **kwargs: Any) -> None:
        # A new listed topic's `topic.<key>.*` can be set at run time before its key is listed:
        # names the node has not declared are taken, and checked by `LiveParameters`.
        kwargs.setdefault('allow_undeclared_parameters', True)
        super().__init__(NODE_NAME, **kwargs)
        fix_mmap_threshold()     # scrapes of drifting size must not ratchet the heap up
        self.config = self._read_config()
        self._tracks: Dict[str, TopicTrack] = {}
        #: Topics in the graph that discovery refused (discovery.max_topics tracked already);
        #: bounded by what the graph holds, each counted once while it stays refused.
        self.refused: Set[str] = set()
        #: The last discovery pass's error (None: it went through).
        self.discovery_failing: Optional[str] = None
        self._forget_queue: 'queue.SimpleQueue[str]' = queue.SimpleQueue()
        #: topic -> the problems already logged for it. Written by the executor, receiver and
        #: statistics threads (`_log_once`) and pruned by `_forget`: only under its lock (a set
        #: rebuilt while another thread added to it raised in discovery and stopped the node).
        self._errors_logged: Dict[str, Set[str]] = {}
        self._errors_lock = threading.Lock()
        self._refresh_turn = 0
        self._next_slot = 0
        self._timebase = _TimeBase()
        # Known before the first subscription, so no row mixes wall-clock and sim-time arrivals.
        self._timebase.sim = cast(ROSClock, self.get_clock()).ros_time_is_active
        self.dead: Optional[str] = None       # why a thread of ours died
        self._stall_s = 3 * self.config.update_period + 2.0
        self._receiver = RawReceiver(self, self._tick, self.config.update_period,
                                     on_error=self._on_receive_error,
                                     on_death=lambda exc: self._thread_died('receiver', exc),
                                     on_full=self._queue_full,
                                     queue_depth=self.config.qos_depth)
        self._stats_queue: 'queue.SimpleQueue[Any]' = queue.SimpleQueue()
        self._stats_thread = threading.Thread(target=self._guarded('statistics', self._stats_loop),
                                              name='topic_stats', daemon=True)
        self._updater = Updater(self)
        self._updater.setHardwareID(self.config.robot)
        self._metrics = TopicMetrics(self.config.robot, self.get_fully_qualified_name(),
                                     now_ns=self._now_ns,
                                     discovered_histograms=self.config.discovery.histograms)
        self._metrics.down_reason = self.down_reason
        # A scrape renders with the receiver and statistics threads out of its way (briefly).
        self._metrics.step_aside = self._receiver.step_aside = self._step_aside = StepAside()
        self._endpoint = attach(self._metrics, self.config.metrics_address,
                                self.config.metrics_port)
        self.metrics_port: Optional[int] = (self._endpoint.port if self._endpoint is not None
                                            else None)
        for t in self.config.topics:
            self._add_track(self._resolve(t), t)
        self._paths = self._setup_paths()
        if self.config.discovery.enabled:
            self._updater.add(DiscoveryTask(self))
            if self.config.discovery.diagnostics == 'summary':
                self._updater.add(DiscoveredSummaryTask(self))
        self._discover()
        # Steady clock: discovery goes on while sim time is paused or /clock has not started.
        self._discovery_timer = self.create_timer(self.config.discovery.period, self._discover,
                                                  clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._stats_thread.start()
        self._receiver.start()
        d = self.config.discovery
        self.get_logger().info(
            f'monitoring {len(self.config.topics)} listed topics'
            + (f', discovering {list(d.include)} except {list(d.exclude)}' if d.enabled else '')
            + (f'; metrics on http://{self.config.metrics_address}:{self.metrics_port}/metrics'
               if self.metrics_port is not None else '; metrics endpoint disabled'))

    # ---- configuration -------------------------------------------------------------------------

    def _read_config(self) -> MonitorConfig:
        values: Dict[str, Any] = declare_all(self, GLOBAL_PARAMS)
        g = read_globals(values)
        for key in g['topics']:
            values.update(declare_all(self, topic_param_specs(key, g)))
        for key in g['paths']:
            values.update(declare_all(self, path_param_specs(key)))
        config = parse_config(values, hostname=socket.gethostname(), given=user_overrides(self))
        self._live = LiveParameters(self, values, self._parse_live,
                                    dynamic=[s.name for s in GLOBAL_PARAMS if s.dynamic],
                                    dynamic_prefixes=('topic.',))
        return config

    def _parse_live(self, values: Dict[str, Any]) -> MonitorConfig:
        """A run-time change, checked as at start-up (a new key's staged settings aside)."""
        waiting = set(staged(values))
        return parse_config(values, hostname=socket.gethostname(),
                            given=[n for n in values if n not in waiting])

    def _apply_live(self) -> None:
        """Executor thread, each discovery period: take an accepted parameter change. Listed
        topics get their new thresholds (their windows and counters carry on), new keys are
        monitored, removed ones fall back to discovery or are forgotten; new discovery patterns
        act in the same pass."""
        new = self._live.take()
        if new is None:
            return
        old = self.config
        self.config = new
        listed = {}
        for t in new.topics:
            listed[self.resolve_topic_name(t.name)] = t
            self._declare_topic(t.key)
        for t in old.topics:
            name = self.resolve_topic_name(t.name)
            track = self._tracks.get(name)
            if track is None or name in listed:
                continue
            if new.discovery.matches(name) or track.path_hooks:
                track.config = new.for_discovered(name)
                if new.discovery.diagnostics == 'summary':
                    self._updater.removeByName(name)
            else:
                self._forget(track)
        for name, t in listed.items():
            track = self._tracks.get(name)
            if track is None:
                self._add_track(name, t)
            else:
                if not track.config.listed and new.discovery.diagnostics == 'summary':
                    self._updater.add(TopicTask(track, self.down_reason,
                                                stall_after_s=self._stall_s))
                track.config = t
        self.get_logger().info(f'parameters changed ({", ".join(self._live.changes)}): applied')

    def _declare_topic(self, key: str) -> None:
        """Declare a listed topic's parameters that are not yet (a key added at run time), with
        the values set for them, so `ros2 param list` shows them all."""
        values = self._live.values
        for spec in topic_param_specs(key, values):
            if not self.has_parameter(spec.name):
                self.declare_parameter(spec.name, values.get(spec.name, spec.default),
                                       ParameterDescriptor(description=spec.description,
                                                           dynamic_typing=True))

    def _resolve(self, t: TopicConfig) -> str:
        try:
            name = self.resolve_topic_name(t.name)
        except Exception as exc:
            raise ConfigError(f'topic.{t.key}.name', f"'{t.name}' does not resolve: {exc}") from None
        other = self._tracks.get(name)
        if other is not None:
            raise ConfigError(f'topic.{t.key}.name',
                              f"resolves to '{name}', as topic.{other.config.key}.name does")
        return name

    def _setup_paths(self) -> List[Tuple[PathMatcher, PathWindow]]:
        """Black-box paths: their topics are tracked whatever discovery says (and never
        forgotten), and every message on them also goes to the path's matcher."""
        paths = []
        self._path_metrics = PathMetrics(self.config.robot)
        self._path_metrics.down_reason = self.down_reason
        for p in self.config.paths:
            def resolve(name: str, field: str) -> str:
                try:
                    return self.resolve_topic_name(name)
                except Exception as exc:
                    raise ConfigError(f'path.{p.key}.{field}',
                                      f"'{name}' does not resolve: {exc}") from None
            resolved = PathConfig(key=p.key,
                                  inputs=tuple(resolve(n, 'inputs') for n in p.inputs),
                                  output=resolve(p.output, 'output'), deadline=p.deadline,
                                  missed_warn=p.missed_warn, silence_timeout=p.silence_timeout)
            matcher = PathMatcher(resolved)
            for name in resolved.inputs:
                self._path_track(name).path_hooks.append(matcher.on_input)
            self._path_track(resolved.output).path_hooks.append(matcher.on_output)
            paths.append((matcher, PathWindow(resolved, self.config.window)))
            self._updater.add(PathTask(p.key, self._path_metrics, self.down_reason))
        if paths:
            attach(self._path_metrics, self.config.metrics_address,
                   self.metrics_port if self.metrics_port is not None else -1)
        return paths

    def _path_track(self, name: str) -> TopicTrack:
        track = self._tracks.get(name)
        return track if track is not None else self._add_track(
            name, self.config.for_discovered(name))

    # ---- graph (executor thread) ---------------------------------------------------------------

    def _add_track(self, name: str, config: TopicConfig) -> TopicTrack:
        track = TopicTrack(name, config)
        track.slot = self._next_slot = (self._next_slot + 1) % REFRESH_ROLL   # stable turn
        self._tracks[name] = track
        if config.listed or self.config.discovery.diagnostics == 'each':
            self._updater.add(TopicTask(track, self.down_reason, stall_after_s=self._stall_s))
        return track

    def discovered_count(self) -> int:
        """Discovered (not listed) topics tracked now."""
        return len(self._tracks) - len(self.config.topics)

    def discovery_errors(self) -> int:
        return self._metrics.discovery_errors_total

    def _discover(self) -> None:
        """Executor thread, every `discovery.period`. Never raises: an exception leaving a timer
        callback leaves the executor and stops the whole node. A failed pass is logged (with its
        traceback the first time, then at most every 30 s), counted
        (`liquid_edge_topic_discovery_errors_total`), shown on the `discovery` status, and
        discovery runs again at the next period."""
        try:
            self._apply_live()
            self._discover_once()
        except Exception as exc:   # noqa: BLE001 - see above: log, count, keep going
            self._metrics.discovery_errors_total += 1
            first = self._metrics.discovery_errors_total == 1
            self.discovery_failing = f'{type(exc).__name__}: {exc}'.splitlines()[0]
            if first:
                self.get_logger().error(
                    'discovery failed; the monitor goes on and tries again every '
                    f'{self.config.discovery.period:g} s\n'
                    + ''.join(traceback.format_exception(exc)).rstrip())
            else:
                self.get_logger().error(f'discovery failed again: {self.discovery_failing}',
                                        throttle_duration_sec=30.0)
        else:
            self.discovery_failing = None

    def _admit(self, topics: Dict[str, List[str]]) -> None:
        """Track the graph's new topics that discovery matches, that have a publisher (a topic
        only subscribed to carries nothing to measure, and would still cost its series), up to
        `discovery.max_topics`; refuse and count the others."""
        discovery = self.config.discovery
        if not discovery.enabled:
            return
        self.refused.intersection_update(topics)     # bounded by what the graph holds
        room = discovery.max_topics - self.discovered_count()
        for name in topics:
            if name in self._tracks or (room <= 0 and name in self.refused):
                continue      # (a refused topic costs no graph query while there is no room)
            if not discovery.matches(name) or not self.count_publishers(name):
                continue
            if room <= 0:
                self.refused.add(name)
                self._metrics.refused_total += 1
                self.get_logger().warning(
                    f'discovery.max_topics ({discovery.max_topics}) reached: {name} is not '
                    f'monitored ({len(self.refused)} refused; see the discovery status)',
                    throttle_duration_sec=60.0)
                continue
            self.refused.discard(name)
            self._add_track(name, self.config.for_discovered(name))
            room -= 1

    def _discover_once(self) -> None:
        topics = dict(self.get_topic_names_and_types())
        self._admit(topics)
        discovery = self.config.discovery
        now = time.monotonic_ns()
        forget_ns = int(discovery.forget_after * 1e9)
        tracks = list(self._tracks.values())
        refresh_all = len(tracks) <= REFRESH_ALL_UP_TO
        self._refresh_turn = turn = (self._refresh_turn + 1) % REFRESH_ROLL
        for track in tracks:
            try:
                types = tuple(topics.get(track.name, ()))
                if (refresh_all or (track.slot + turn) % REFRESH_ROLL == 0
                        or track.subscription is None or track.problem is not None
                        or types != track.graph_types
                        or (self.count_publishers(track.name) if types else 0)
                        != track.publishers):
                    self._refresh(track, types)
                    track.graph_types = types
            except Exception as exc:   # one odd topic must never stop the monitor
                track.problem = f'cannot monitor: {exc}'
                self._log_once(track.name, track.problem)
            if track.publishers:
                track.unpublished_since_ns = None
            elif track.unpublished_since_ns is None:
                track.unpublished_since_ns = now
            elif (forget_ns and not track.config.listed and not track.path_hooks
                  and now - track.unpublished_since_ns >= forget_ns):
                self._forget(track)
                continue
            if not (track.config.listed or track.path_hooks or discovery.matches(track.name)):
                self._forget(track)     # discovery patterns changed at run time

    def _forget(self, track: TopicTrack) -> None:
        """Drop a discovered topic that has had no publisher for `discovery.forget_after`: its
        subscription, /diagnostics status and metric series (removed by the statistics thread,
        the only one that writes them, so a report computed meanwhile cannot bring them back)."""
        del self._tracks[track.name]
        track.forgotten = True
        if track.subscription is not None:
            self._receiver.remove(track.subscription)
            self.destroy_subscription(track.subscription)
            track.subscription = None
        self._updater.removeByName(track.name)
        self._forget_queue.put(track.name)
        with self._errors_lock:
            self._errors_logged.pop(track.name, None)
        self.get_logger().debug(f'{track.name}: forgotten (no publisher for '
                                f'{self.config.discovery.forget_after:g} s)')

    def _refresh(self, track: TopicTrack, types: Sequence[str]) -> None:
        infos = self.get_publishers_info_by_topic(track.name) if types else []
        if len(infos) != track.publishers:
            track.publisher_epoch += 1    # sequence numbers of different writers don't compare
        track.publishers = len(infos)
        if not infos:
            return
        pub_types = sorted({i.topic_type for i in infos})
        if len(pub_types) > 1:
            track.problem = f'published with {len(pub_types)} types: {", ".join(pub_types)}'
            self._log_once(track.name, track.problem)
            return
        type_name = pub_types[0]
        best_effort = any(i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
                          for i in infos)
        if (track.subscription is not None and type_name == track.type_name
                and best_effort == track.best_effort):
            track.problem = None
            return
        try:
            msg_class = import_message_type(type_name)
        except ImportError as exc:
            # The type is taken only once a subscription of it exists: set here, the next
            # discovery would match it and clear the problem while the old type's subscription
            # received nothing. That subscription goes; the WARN stays until one can be made.
            if track.subscription is not None:
                self._receiver.remove(track.subscription)
                self.destroy_subscription(track.subscription)
                track.subscription = None
            track.problem = str(exc)
            self._log_once(track.name, track.problem)
            return
        self._subscribe(track, msg_class, type_name, best_effort)

    def _subscribe(self, track: TopicTrack, msg_class: Any, type_name: str,
                   best_effort: bool) -> None:
        """(Re)create the raw subscription with a QoS every publisher can match."""
        if track.subscription is not None:
            self._receiver.remove(track.subscription)
            self.destroy_subscription(track.subscription)
            track.subscription = None
        has_header = starts_with_header(msg_class)
        if track.window is None or type_name != track.type_name:
            old = track.window
            track.window = TopicWindow(self.config.window, self.config.window_capacity, has_header,
                                       self.config.future_stamp_tolerance)
            if old is not None:
                track.window.carry_totals(old)     # the series goes on: counters never go back
        track.type_name, track.has_header, track.best_effort = type_name, has_header, best_effort
        # A best-effort subscription receives from reliable and best-effort publishers alike;
        # a reliable one silently receives nothing from a best-effort publisher.
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self.config.qos_depth,
                         reliability=(ReliabilityPolicy.BEST_EFFORT if best_effort
                                      else ReliabilityPolicy.RELIABLE),
                         durability=DurabilityPolicy.VOLATILE)
        handler = self._make_handler(track.window, has_header, track.path_hooks)
        sub = self.create_subscription(msg_class, track.name, handler, qos,
                                       callback_group=self._receiver.group, raw=True)
        track.subscription = sub
        track.subscribed_ns = self._now_ns()
        track.problem = None
        self._receiver.add(sub, handler)

    def _make_handler(self, window: TopicWindow, has_header: bool,
                      hooks: Sequence[Callable[[int, Optional[int]], None]] = ()) -> Any:
        """The per-message function (receiver thread): a few lookups and one `record` call.

        Its first row carries `SEQ_RESET`, so no drop is measured across a re-subscription.
        Arrival for rates and periods is on the steady clock: the message's age (wall clock now
        minus the DDS reception stamp, which a batched take would otherwise blur) taken from the
        steady clock now, so a wall-clock step cannot unsort the window; the reception stamp
        itself is kept for the header latency. Under sim time both are the node clock. A topic on
        black-box paths also hands (arrival, stamp) to each path's matcher.
        """
        record = window.record
        clock = self.get_clock()
        timebase = self._timebase
        first = [True]
        wall_now, steady_now = time.time_ns, time.monotonic_ns

        def on_message(data: bytes, info: Dict[str, int]) -> None:
            received = info['received_timestamp']
            source = info['source_timestamp']
            seq = info['publication_sequence_number']
            # core.msg_info's rule, inline on this hot path: 0 or >= 2^62 (UINT64_MAX) unknown
            if not 0 < seq < SEQUENCE_LIMIT:
                seq = MISSING
            if not 0 < received < SEQUENCE_LIMIT:
                received = 0
            if not 0 < source < SEQUENCE_LIMIT:
                source = 0
            if first[0]:
                first[0] = False
                seq = SEQ_RESET
            stamp = header_stamp_ns(data) if has_header else None
            if timebase.sim:
                arrival = wall = clock.now().nanoseconds
            else:
                arrival = steady_now()
                wall = wall_now()
                if received:
                    age = wall - received
                    if 0 <= age < NS_PER_S:     # else the wall clock stepped since: age 0
                        arrival -= age
                    wall = received
            record(arrival, len(data), received - source if source and received else MISSING,
                   seq, MISSING if stamp is None else stamp, wall)
            for hook in hooks:
                hook(arrival, stamp)
        return on_message

    # ---- statistics (receiver and statistics threads) ------------------------------------------

    def _tick(self) -> None:
        """Receiver thread, every update_period: detach each window's new rows (cheap) and leave
        the arithmetic to the statistics thread, so taking messages never waits for numpy."""
        clock = cast(ROSClock, self.get_clock())     # a node's clock is one (typed Clock)
        sim = self._timebase.sim = clock.ros_time_is_active
        self._receiver.batch_s = 0.0 if sim else BATCH_S
        now = self._now_ns()
        if not self._stats_queue.empty():
            return   # statistics are behind: rows stay pending and go with the next tick
        work = []
        for track in list(self._tracks.values()):
            window = track.window
            epoch = track.publisher_epoch
            changed, track.applied_epoch = epoch != track.applied_epoch, epoch
            work.append((track, window, window.detach() if window is not None else None,
                         changed))
        paths = [(window, matcher.detach(now)) for matcher, window in self._paths]
        self._stats_queue.put((now, work, paths))

    def _stats_loop(self) -> None:
        """Statistics thread: turn detached rows into reports, in tick order."""
        while True:
            item = self._stats_queue.get()
            if item is None:
                return
            now, work, paths = item
            for window, rows in paths:
                try:
                    self._path_metrics.update(window.update(now, rows))
                except Exception as exc:
                    self._log_once(window.config.output, f'path statistics failed: {exc!r}')
            for track, window, pending, changed in work:
                self._step_aside.pause()
                if track.forgotten:
                    continue
                try:
                    self._metrics.update(track.update(now, window, pending, changed))
                except Exception as exc:
                    self._log_once(track.name, f'statistics failed: {exc!r}')
            while not self._forget_queue.empty():
                self._metrics.remove(self._forget_queue.get())

    def _now_ns(self) -> int:
        """The clock of arrivals: steady, or the node clock under sim time."""
        return self.get_clock().now().nanoseconds if self._timebase.sim else time.monotonic_ns()

    # ---- our own threads: a death is seen on /diagnostics, in the metrics and in the log --------

    def _guarded(self, what: str, loop: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                loop()
            except BaseException as exc:
                self._thread_died(what, exc)
        return run

    def _thread_died(self, what: str, exc: BaseException) -> None:
        self.dead = f'{what} thread died ({type(exc).__name__}: {exc})'.splitlines()[0]
        self.get_logger().error(
            f'{self.dead}; every topic is STALE and liquid_edge_monitor_up is 0 until the monitor '
            'restarts\n' + ''.join(traceback.format_exception(exc)).rstrip())

    def down_reason(self) -> Optional[str]:
        """Why the statistics cannot be trusted now (a thread died or stopped updating), or None."""
        if self.dead:
            return self.dead
        if not self._receiver.alive():
            return 'receiver thread stopped'
        if self._stats_thread.ident is not None and not self._stats_thread.is_alive():
            return 'statistics thread stopped'
        last = self._metrics.updated_mono
        if last is not None and self._tracks and time.monotonic() - last > self._stall_s:
            return f'statistics not updated for {time.monotonic() - last:.1f} s'
        return None

    def _queue_full(self, sub: Any, taken: int) -> None:
        """Receiver thread: the reader queue was full; mark the gap before these as our own."""
        track = self._tracks.get(sub.topic_name)
        if track is not None and track.subscription is sub and track.window is not None:
            track.window.mark_queue_full(taken)

    def _on_receive_error(self, sub: Any, exc: BaseException) -> None:
        self._log_once(sub.topic_name, f'receiving failed: {exc!r}')

    def _log_once(self, topic: str, text: str) -> None:
        """Log a topic's problem the first time it is seen (any thread). A topic no longer
        tracked gets no entry: `_forget` deletes the track before it prunes under the lock, so
        none outlives its topic."""
        with self._errors_lock:
            if topic not in self._tracks:
                return
            seen = self._errors_logged.setdefault(topic, set())
            if text in seen:
                return
            seen.add(text)
        self.get_logger().warning(f'{topic}: {text}')

    # ---- readers -------------------------------------------------------------------------------

    def reports(self) -> List[TopicReport]:
        """The latest report of every topic, sorted by name (for the live view and tests)."""
        return sorted((t.report for t in list(self._tracks.values()) if t.report is not None),
                      key=lambda r: r.name)

    def destroy_node(self) -> None:
        # Also called by rclpy.shutdown on a node whose __init__ failed half-way (bad parameters).
        receiver = getattr(self, '_receiver', None)
        if receiver is not None:
            receiver.stop()
        stats = getattr(self, '_stats_thread', None)
        if stats is not None and stats.is_alive():
            self._stats_queue.put(None)
            stats.join(5.0)
        metrics = getattr(self, '_metrics', None)
        if metrics is not None:
            detach(metrics, getattr(self, '_endpoint', None))
        if getattr(self, '_paths', None):
            detach(self._path_metrics, getattr(self, '_endpoint', None))
        super().destroy_node()


def main(args: Optional[List[str]] = None, stop: Any = None) -> int:
    return node_main(NODE_NAME, TopicMonitor, (ConfigError, OSError), args, stop=stop)


if __name__ == '__main__':
    sys.exit(main())
