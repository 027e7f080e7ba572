"""Turn a topic's statistics and graph state into a diagnostic level and a sentence (no ROS imports).

Levels are the diagnostic_msgs values as ints: OK 0, WARN 1, ERROR 2, STALE 3 (also the value of
the `liquid_edge_topic_status` metric). Messages are written for a person at rqt_robot_monitor:
"rate 87.2 Hz below minimum 95.0 Hz".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

from ..core.levels import ERROR, OK, STALE, WARN
from .config import TopicConfig
from .stats import TopicSnapshot

#: Below this fraction of min_rate (or above this multiple of max_latency) a WARN becomes an ERROR.
ERROR_RATE_FRACTION = 0.5
ERROR_LATENCY_FACTOR = 2.0


@dataclass(frozen=True)
class TopicState:
    """What the ROS graph and the subscription say about a topic, beside its statistics."""

    type_name: str = ''
    publishers: int = 0
    problem: Optional[str] = None          # e.g. a type that cannot be imported
    silent_for_s: Optional[float] = None   # since the last message, or since subscribing if none
    subscribed: bool = False
    has_header: bool = False               # the type starts with a std_msgs/Header


@dataclass(frozen=True)
class TopicReport:
    """Everything known about one topic at one moment; immutable, so readers on any thread agree."""

    name: str
    config: TopicConfig
    state: TopicState
    snapshot: Optional[TopicSnapshot]
    level: int
    message: str


def _n(count: int, noun: str) -> str:
    return f'{count} {noun}' + ('' if count == 1 else 's')


def _ms(seconds: float) -> str:
    return f'{seconds * 1e3:.1f} ms'


def evaluate(config: TopicConfig, state: TopicState,
             snap: Optional[TopicSnapshot]) -> Tuple[int, str]:
    """The level and message of a topic (the worst finding decides the level)."""
    if state.problem:
        return WARN, state.problem
    if state.publishers == 0:
        return STALE, 'no publishers'
    if (config.stale_timeout > 0 and state.silent_for_s is not None
            and state.silent_for_s >= config.stale_timeout):
        return STALE, (f'no message for {state.silent_for_s:.1f} s '
                       f'(stale timeout {config.stale_timeout:.1f} s)')
    if snap is None or snap.messages_total == 0:
        return OK, 'waiting for the first message'

    level, problems = OK, []

    def find(lvl: int, text: str) -> None:
        nonlocal level
        level = max(level, lvl)
        problems.append(text)

    rate = snap.rate_hz
    if rate is None:
        # Fewer than two messages in the window: a slow topic is not at 0 Hz, so only judge it
        # when the minimum rate promises at least two.
        if config.min_rate and config.min_rate * snap.window_s >= 2:
            find(ERROR, f'fewer than 2 messages in {snap.window_s:g} s, below minimum '
                        f'{config.min_rate:.1f} Hz')
    else:
        if config.min_rate and rate < config.min_rate:
            lvl = ERROR if rate < config.min_rate * ERROR_RATE_FRACTION else WARN
            find(lvl, f'rate {rate:.1f} Hz below minimum {config.min_rate:.1f} Hz')
        if config.max_rate and rate > config.max_rate:
            find(WARN, f'rate {rate:.1f} Hz above maximum {config.max_rate:.1f} Hz')
    lat = snap.header_latency
    if config.max_latency and lat is not None and lat.p95 > config.max_latency:
        lvl = ERROR if lat.p95 > config.max_latency * ERROR_LATENCY_FACTOR else WARN
        find(lvl, f'latency p95 {_ms(lat.p95)} above maximum {_ms(config.max_latency)}')
    if snap.dropped_window:
        find(WARN, f'{_n(snap.dropped_window, "message")} dropped in the last '
                   f'{snap.window_s:g} s')
    if snap.own_lost_window:
        find(WARN, f'{_n(snap.own_lost_window, "message")} lost by the monitor itself in the '
                   f'last {snap.window_s:g} s (it fell behind and its reader queue overflowed: '
                   'not a drop of the topic)')
    if snap.zero_stamps_window:
        find(WARN, f'{_n(snap.zero_stamps_window, "message")} with a zero header.stamp')
    if snap.negative_stamps_window:
        find(WARN, f'{_n(snap.negative_stamps_window, "message")} with a negative header.stamp')
    if snap.future_stamps_window:
        find(WARN, f'{_n(snap.future_stamps_window, "header stamp")} in the future '
                   '(clock skew?)')
    if problems:
        return level, '; '.join(problems)
    text = f'{rate:.1f} Hz' if rate is not None else \
        f'rate unknown (fewer than 2 messages in {snap.window_s:g} s)'
    if lat is not None:
        text += f', latency p95 {_ms(lat.p95)}'
    return OK, text


def report(name: str, config: TopicConfig, state: TopicState,
           snap: Optional[TopicSnapshot]) -> TopicReport:
    level, message = evaluate(config, state, snap)
    return TopicReport(name, config, state, snap, level, message)


def key_values(r: TopicReport) -> List[Tuple[str, str]]:
    """The diagnostic KeyValues of a report; units are in the keys."""
    c, st, s = r.config, r.state, r.snapshot
    kv: List[Tuple[str, str]] = [('topic', r.name), ('type', st.type_name or 'unknown'),
                                 ('publishers', str(st.publishers))]
    if c.expected_rate:
        kv.append(('expected rate (Hz)', f'{c.expected_rate:g}'))
    if c.min_rate:
        kv.append(('min rate (Hz)', f'{c.min_rate:g}'))
    if c.max_rate:
        kv.append(('max rate (Hz)', f'{c.max_rate:g}'))
    if c.max_latency:
        kv.append(('max latency (ms)', f'{c.max_latency * 1e3:g}'))
    if c.stale_timeout:
        kv.append(('stale timeout (s)', f'{c.stale_timeout:g}'))
    if s is None:
        return kv
    kv += [('window (s)', f'{s.window_s:g}'),
           ('messages in window', str(s.window_messages)),
           ('messages total', str(s.messages_total)),
           ('rate (Hz)', f'{s.rate_hz:.3f}' if s.rate_hz is not None else 'unknown'),
           ('jitter std (ms)', f'{s.jitter_s * 1e3:.3f}'),
           ('max gap (ms)', f'{s.max_gap_s * 1e3:.3f}'),
           ('bandwidth (B/s)', f'{s.bandwidth_bps:.0f}'),
           ('mean size (B)', f'{s.mean_size_bytes:.0f}')]
    if s.age_s is not None:
        kv.append(('last message age (s)', f'{s.age_s:.3f}'))
    for label, q in (('latency', s.header_latency), ('transport latency', s.transport_latency)):
        if q is not None:
            kv += [(f'{label} p50 (ms)', f'{q.p50 * 1e3:.3f}'),
                   (f'{label} p95 (ms)', f'{q.p95 * 1e3:.3f}'),
                   (f'{label} p99 (ms)', f'{q.p99 * 1e3:.3f}'),
                   (f'{label} max (ms)', f'{q.max * 1e3:.3f}')]
    if s.drops_measurable:
        kv += [('dropped in window', str(s.dropped_window)),
               ('dropped total', str(s.dropped_total)),
               ('lost by the monitor total', str(s.own_lost_total))]
    else:
        kv.append(('dropped total', f'{s.dropped_total} (not measured: several publishers)'))
    if (s.zero_stamps_total or s.future_stamps_total or s.unreadable_stamps_total
            or s.negative_stamps_total):
        kv += [('zero stamps total', str(s.zero_stamps_total)),
               ('negative stamps total', str(s.negative_stamps_total)),
               ('future stamps total', str(s.future_stamps_total)),
               ('unreadable stamps total', str(s.unreadable_stamps_total))]
    return kv
