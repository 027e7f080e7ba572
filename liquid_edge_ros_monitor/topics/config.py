"""The topic monitor's parameters: their schema, and validation into a `MonitorConfig` (no ROS imports).

Built on `core.params`: one schema drives the declarations and the checks, and every error is one
line naming the parameter.

Per-topic settings follow the ros2_control style, since ROS parameter names cannot hold a topic name:

    topics: [imu, odom]          # keys
    topic:
      imu: {name: imu/data, expected_rate: 200.0, tolerance: 0.05, max_latency: 0.02}
      odom: {name: odom, min_rate: 45.0}

Black-box paths (`paths.py`) the same way:

    paths: [controller]
    path:
      controller: {inputs: [imu/data], output: cmd_vel, deadline: 0.02}
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ..core.params import (ConfigError, ParamSpec, endpoint_params, fraction, int_range, non_negative,
                           patterns, positive, read_params, topic_name, unknown_names)
from .paths import PathConfig

_KEY = re.compile(r'[A-Za-z][A-Za-z0-9_]*\Z')


def _keys(v: Sequence[str]) -> Optional[str]:
    seen = set()
    for k in v:
        if not _KEY.match(k):
            return f"key '{k}' must be letters, digits and underscores, starting with a letter"
        if k in seen:
            return f"key '{k}' is listed twice"
        seen.add(k)
    return None


#: Topics discovery leaves out by default: ROS's own logging and parameter events, and
#: /diagnostics (published in bursts by every node that reports: its rate and jitter say nothing)
#: with the aggregator's outputs.
NOISE_TOPICS = ('/rosout', '/parameter_events', '/diagnostics', '/diagnostics_agg',
                '/diagnostics_toplevel_state')


def _hysteresis(v: float) -> Optional[str]:
    return None if 0 <= v < 0.5 else f'must be in [0, 0.5), got {v}'


GLOBAL_PARAMS: Tuple[ParamSpec, ...] = (
    ParamSpec('window', 'double', 5.0, 'Sliding statistics window, seconds.', positive),
    ParamSpec('window_capacity', 'integer', 20000,
              'Most messages held per topic window; bounds memory (the window shortens past it).',
              int_range(2, 10_000_000)),
    ParamSpec('update_period', 'double', 1.0,
              'How often statistics are recomputed for diagnostics and metrics, seconds.', positive),
    ParamSpec('future_stamp_tolerance', 'double', 0.01,
              'How far a header.stamp may lie ahead of its receipt before it counts as a stamp in '
              'the future, seconds (clock steps under sim time, skew between hosts).',
              non_negative),
    ParamSpec('qos_depth', 'integer', 100, 'History depth of each monitoring subscription.',
              int_range(1, 100_000)),
    *endpoint_params(9108),
    ParamSpec('discovery.enabled', 'bool', True, 'Also monitor topics that are not listed in `topics`.'),
    ParamSpec('discovery.include', 'string_array', ['.*'],
              'Regular expressions (full match on the resolved name) of topics to discover. May be '
              'set at run time: discovered topics it no longer matches are forgotten.', patterns,
              dynamic=True),
    ParamSpec('discovery.exclude', 'string_array', list(NOISE_TOPICS),
              'Regular expressions of topics never to discover (wins over include). By default '
              "the graph's own traffic: /rosout, /parameter_events and the diagnostics topics "
              '(bursts from several nodes: a rate or jitter of them means nothing). To watch one '
              'on purpose, list it in `topics` or leave it out of this list. May be set at run '
              'time.', patterns, dynamic=True),
    ParamSpec('discovery.period', 'double', 1.0, 'How often the ROS graph is re-read, seconds.',
              positive),
    ParamSpec('discovery.stale_timeout', 'double', 0.0,
              'Silence after which a discovered topic is STALE, seconds; 0 = only when its '
              'publishers vanish.', non_negative),
    ParamSpec('discovery.diagnostics', 'string', 'each',
              "'each': one /diagnostics status per discovered topic; 'summary': one status "
              "'discovered topics' (counts per level, the worst ten named) for all of them, since "
              'a thousand statuses a second (850 kB) is more than rqt_robot_monitor users can '
              'read. Listed topics always have their own status; metrics are the same either way.',
              lambda v: None if v in ('each', 'summary')
              else f"must be 'each' or 'summary', got '{v}'"),
    ParamSpec('discovery.forget_after', 'double', 300.0,
              'A discovered topic without publishers this long is forgotten (a topic is only '
              'discovered once it has a publisher; one that only has subscribers is not tracked): '
              'its /diagnostics '
              'status and metric series go (topics come and go on a robot that runs for days), '
              'seconds; 0 = never. Listed topics are never forgotten: they read STALE.',
              non_negative),
    ParamSpec('discovery.max_topics', 'integer', 1000,
              'Most discovered topics tracked at once (listed topics come on top). Beyond it a '
              'new topic is refused: counted in liquid_edge_topic_refused_total and named on the '
              "'discovery' status (WARN) until a tracked one is forgotten. Each tracked topic "
              'costs up to 53 series per scrape (docs/METRICS.md), a subscription and a window.',
              int_range(1, 1_000_000)),
    ParamSpec('discovery.histograms', 'bool', True,
              'Export the two latency histograms (header and transport latency) of discovered '
              'topics: 38 of their 53 series. false: 15 series per discovered topic, latency p95 '
              'stays on /diagnostics; listed topics always keep their histograms.'),
    ParamSpec('defaults.tolerance', 'double', 0.1,
              'Default allowed relative deviation from expected_rate.', fraction),
    ParamSpec('defaults.max_latency', 'double', 0.0,
              'Default maximum header latency p95, seconds; 0 = no limit.', non_negative),
    ParamSpec('defaults.stale_timeout', 'double', 3.0,
              'Default silence after which a listed topic is STALE, seconds; 0 = never.',
              non_negative),
    ParamSpec('topics', 'string_array', [],
              'Keys of the listed topics; each has its settings under topic.<key>.* May be set at '
              'run time (set a new key\'s topic.<key>.name first): a topic no longer listed is '
              'discovered or forgotten, a new one monitored from the next period.', _keys,
              dynamic=True),
    ParamSpec('paths', 'string_array', [],
              "Keys of black-box paths (a node's reaction from its input topics to its output "
              'topic); each has its settings under path.<key>.*', _keys),
    ParamSpec('defaults.drop_warn_ratio', 'double', 0.01,
              "Share of the window's expected messages (received + dropped) above which dropped "
              'messages are WARN; a single lost message never is (it takes two). 0 = drops never '
              'WARN (they are still counted).', fraction),
    ParamSpec('defaults.hysteresis', 'double', 0.03,
              'A rate, latency or drop level is entered as soon as its value passes the limit '
              'and left only once the value is back inside the limit by this share of it (a '
              'rate minimum of 190 Hz: WARN below 190, OK again from 195.7 Hz), so a value that '
              'hovers at a limit does not flap the status. Drops, small counts, clear at half '
              'of drop_warn_ratio. 0 = no hysteresis.', _hysteresis),
)


def _topic_list(v: Sequence[str]) -> Optional[str]:
    if not v:
        return 'must name at least one input topic'
    for t in v:
        problem = topic_name(t)
        if problem:
            return problem
    return None


#: The per-path fields under ``path.<key>.``.
PATH_FIELDS: Tuple[ParamSpec, ...] = (
    ParamSpec('inputs', 'string_array', [],
              "The node's input topics (relative names resolve in the monitor's namespace).",
              _topic_list),
    ParamSpec('output', 'string', '', "The node's output topic.", topic_name),
    ParamSpec('deadline', 'double', 0.0,
              'An input no output follows within this is missed; a reaction p95 above it is '
              'WARN, seconds.', positive),
    ParamSpec('missed_warn', 'double', 0.05,
              "Share of the window's inputs missed above which the path is WARN (ERROR above "
              'half).', fraction),
    ParamSpec('silence_timeout', 'double', 1.0,
              'No output this long while inputs arrive is ERROR, seconds.', positive),
)


def path_param_specs(key: str) -> List[ParamSpec]:
    """The specs of ``path.<key>.*``."""
    return [dataclasses.replace(f, name=f'path.{key}.{f.name}') for f in PATH_FIELDS]

#: The per-topic fields under ``topic.<key>.``; defaults that say 'defaults.X' inherit it. All may
#: be set at run time: the topic's window and counters carry on under the new thresholds.
TOPIC_FIELDS: Tuple[ParamSpec, ...] = (
    ParamSpec('name', 'string', '', 'Topic name; relative names resolve in the node namespace.',
              topic_name, dynamic=True),
    ParamSpec('expected_rate', 'double', 0.0,
              'Expected rate, Hz; with tolerance it sets min/max rate. 0 = none.', non_negative, dynamic=True),
    ParamSpec('tolerance', 'double', 'defaults.tolerance',
              'Allowed relative deviation from expected_rate.', fraction, dynamic=True),
    ParamSpec('min_rate', 'double', 0.0, 'Minimum rate, Hz (instead of expected_rate). 0 = none.',
              non_negative, dynamic=True),
    ParamSpec('max_rate', 'double', 0.0, 'Maximum rate, Hz (instead of expected_rate). 0 = none.',
              non_negative, dynamic=True),
    ParamSpec('max_latency', 'double', 'defaults.max_latency',
              'Maximum header latency p95, seconds. 0 = no limit.', non_negative, dynamic=True),
    ParamSpec('stale_timeout', 'double', 'defaults.stale_timeout',
              'Silence after which the topic is STALE, seconds. 0 = never.', non_negative, dynamic=True),
    ParamSpec('drop_warn_ratio', 'double', 'defaults.drop_warn_ratio',
              "Share of the window's expected messages dropped above which it is WARN.",
              fraction, dynamic=True),
    ParamSpec('hysteresis', 'double', 'defaults.hysteresis',
              'Share of a limit by which a value must be back inside it to leave its level.',
              _hysteresis, dynamic=True),
)


def topic_param_specs(key: str, values: Mapping[str, Any]) -> List[ParamSpec]:
    """The specs of ``topic.<key>.*``, with inherited defaults resolved from `values`."""
    specs = []
    for f in TOPIC_FIELDS:
        default = f.default
        if isinstance(default, str) and default.startswith('defaults.'):
            default = values.get(default, _global(default).default)
        specs.append(ParamSpec(f'topic.{key}.{f.name}', f.type, default, f.description, f.check,
                               dynamic=f.dynamic))
    return specs


def _global(name: str) -> ParamSpec:
    return next(s for s in GLOBAL_PARAMS if s.name == name)


@dataclass(frozen=True)
class TopicConfig:
    """Thresholds for one topic. Rates in Hz, times in seconds; 0 means 'not checked'."""

    name: str
    key: str = ''
    expected_rate: float = 0.0
    tolerance: float = 0.1
    min_rate: float = 0.0
    max_rate: float = 0.0
    max_latency: float = 0.0
    stale_timeout: float = 0.0
    listed: bool = False
    drop_warn_ratio: float = 0.01
    hysteresis: float = 0.03


@dataclass(frozen=True)
class DiscoveryConfig:
    enabled: bool = True
    include: Tuple[str, ...] = ('.*',)
    exclude: Tuple[str, ...] = ()
    period: float = 1.0
    stale_timeout: float = 0.0
    forget_after: float = 300.0
    diagnostics: str = 'each'
    max_topics: int = 1000
    histograms: bool = True

    def matches(self, topic: str) -> bool:
        """Whether a resolved topic name is to be discovered."""
        if not self.enabled:
            return False
        if any(re.fullmatch(p, topic) for p in self.exclude):
            return False
        return any(re.fullmatch(p, topic) for p in self.include)


@dataclass(frozen=True)
class MonitorConfig:
    window: float
    window_capacity: int
    update_period: float
    future_stamp_tolerance: float
    qos_depth: int
    metrics_port: int
    metrics_address: str
    robot: str
    discovery: DiscoveryConfig
    topics: Tuple[TopicConfig, ...]
    paths: Tuple[PathConfig, ...] = ()      # names as given (the node resolves them)
    drop_warn_ratio: float = 0.01           # defaults.drop_warn_ratio
    hysteresis: float = 0.03                # defaults.hysteresis

    def for_discovered(self, name: str, tolerance: float = 0.1) -> TopicConfig:
        """Thresholds for a topic found by discovery: no rate limits, the discovery stale timeout,
        the default drop ratio and hysteresis."""
        return TopicConfig(name=name, tolerance=tolerance,
                           stale_timeout=self.discovery.stale_timeout,
                           drop_warn_ratio=self.drop_warn_ratio, hysteresis=self.hysteresis)


def _topic(key: str, v: Mapping[str, Any]) -> TopicConfig:
    p = f'topic.{key}.'
    expected, lo, hi = v[p + 'expected_rate'], v[p + 'min_rate'], v[p + 'max_rate']
    if expected and (lo or hi):
        raise ConfigError(p + 'expected_rate',
                          'set either expected_rate (with tolerance) or min_rate/max_rate, not both')
    if expected:
        lo = expected * (1 - v[p + 'tolerance'])
        hi = expected * (1 + v[p + 'tolerance'])
    if lo and hi and lo > hi:
        raise ConfigError(p + 'min_rate', f'{lo} Hz is above max_rate {hi} Hz')
    return TopicConfig(name=v[p + 'name'], key=key, expected_rate=expected,
                       tolerance=v[p + 'tolerance'], min_rate=lo, max_rate=hi,
                       max_latency=v[p + 'max_latency'], stale_timeout=v[p + 'stale_timeout'],
                       listed=True, drop_warn_ratio=v[p + 'drop_warn_ratio'],
                       hysteresis=v[p + 'hysteresis'])


def all_param_names(values: Mapping[str, Any]) -> List[str]:
    """Every parameter name the monitor declares, given the `topics` keys in `values`."""
    names = [s.name for s in GLOBAL_PARAMS]
    for key in values.get('topics', []) or []:
        names += [s.name for s in topic_param_specs(key, values)]
    for key in values.get('paths', []) or []:
        names += [s.name for s in path_param_specs(key)]
    return names


def unknown_parameters(given: Iterable[str], values: Mapping[str, Any]) -> List[str]:
    """Names in `given` that the monitor does not know (likely typos), sorted."""
    return unknown_names(given, all_param_names(values))


def read_globals(values: Mapping[str, Any]) -> Dict[str, Any]:
    """Validate the global parameters (not the per-topic ones); raise `ConfigError`.

    The node calls this before it declares ``topic.<key>.*``, since the keys come from `topics`.
    """
    return read_params(GLOBAL_PARAMS, values)


def staged(values: Mapping[str, Any]) -> List[str]:
    """Names of ``topic.<key>.*`` values set for a key that `topics` does not list (yet): a new
    listed topic's settings, set at run time before its key is added to `topics`."""
    listed = set(values.get('topics') or [])
    return [n for n in values
            if n.startswith('topic.') and n.split('.')[1] not in listed]


def parse_config(values: Mapping[str, Any], hostname: str = 'localhost',
                 given: Optional[Iterable[str]] = None) -> MonitorConfig:
    """Validate raw parameter values (name -> value) into a `MonitorConfig`, or raise `ConfigError`.

    `given` are the parameter names the user supplied (e.g. a params file); unknown ones are errors,
    because a mistyped threshold that silently falls back to its default is worse than no start.
    """
    g = read_globals(values)
    if given is not None:
        unknown = unknown_parameters(given, g)
        if unknown:
            raise ConfigError(unknown[0], 'unknown parameter (check its spelling and nesting)')
    topics = []
    names: Dict[str, str] = {}
    for key in g['topics']:
        tv = read_params(topic_param_specs(key, g), values)
        t = _topic(key, tv)
        if t.name in names:
            raise ConfigError(f'topic.{key}.name',
                              f"'{t.name}' is also the name of topic.{names[t.name]}")
        names[t.name] = key
        topics.append(t)
    paths = []
    for key in g['paths']:
        pv = read_params(path_param_specs(key), values)
        p = f'path.{key}.'
        if pv[p + 'output'] in pv[p + 'inputs']:
            raise ConfigError(p + 'output', f"'{pv[p + 'output']}' is also one of its inputs")
        paths.append(PathConfig(key=key, inputs=tuple(pv[p + 'inputs']), output=pv[p + 'output'],
                                deadline=pv[p + 'deadline'], missed_warn=pv[p + 'missed_warn'],
                                silence_timeout=pv[p + 'silence_timeout'],
                                hysteresis=g['defaults.hysteresis']))
    return MonitorConfig(
        window=g['window'], window_capacity=g['window_capacity'], update_period=g['update_period'],
        future_stamp_tolerance=g['future_stamp_tolerance'], qos_depth=g['qos_depth'],
        metrics_port=g['metrics_port'],
        metrics_address=g['metrics_address'], robot=g['robot'] or hostname,
        discovery=DiscoveryConfig(
            enabled=g['discovery.enabled'], include=tuple(g['discovery.include']),
            exclude=tuple(g['discovery.exclude']), period=g['discovery.period'],
            stale_timeout=g['discovery.stale_timeout'],
            forget_after=g['discovery.forget_after'],
            diagnostics=g['discovery.diagnostics'],
            max_topics=g['discovery.max_topics'], histograms=g['discovery.histograms']),
        topics=tuple(topics), paths=tuple(paths),
        drop_warn_ratio=g['defaults.drop_warn_ratio'], hysteresis=g['defaults.hysteresis'])
