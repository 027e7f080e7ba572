"""Turn a topic's statistics and graph state into a diagnostic level and a sentence (no ROS imports).

Levels are the diagnostic_msgs values as ints: OK 0, WARN 1, ERROR 2, STALE 3 (also the value of
the `liquid_edge_topic_status` metric). Messages are written for a person at rqt, lead with the reason for the level and
fit in about 60 characters: "rate 150.0 Hz below 190 Hz min" (docs/DIAGNOSTICS.md). Never a '<': rqt_runtime_monitor
shows messages as HTML, and "< 190 Hz min" vanished there as a tag.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from ..core.levels import ERROR, OK, STALE, WARN, held_level
from ..core.units import byte_rate, join_findings, percent
from .config import TopicConfig
from .stats import TopicSnapshot

#: Below this fraction of min_rate (or above this multiple of max_latency) a WARN becomes an ERROR.
ERROR_RATE_FRACTION = 0.5
ERROR_LATENCY_FACTOR = 2.0
#: A drop WARN clears once the drop ratio is under this share below `drop_warn_ratio` (half).
DROP_CLEAR_MARGIN = 0.5


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


def evaluate(config: TopicConfig, state: TopicState, snap: Optional[TopicSnapshot],
             held: Optional[Dict[str, int]] = None) -> Tuple[int, str]:
    """The level and message of a topic (the worst finding decides the level and leads the
    message, cut to about 60 characters).

    `held`: the level each threshold check (rate, latency, drops) gave at the previous
    evaluation of this topic, updated here: a level is kept until its value is back inside the
    limit by `config.hysteresis` of it (`held_level`). None: no memory (each call on its own)."""
    memory: Dict[str, int] = held if held is not None else {}
    if state.problem:
        memory.clear()
        return WARN, state.problem
    if state.publishers == 0:
        memory.clear()
        return STALE, 'no publishers'
    if (config.stale_timeout > 0 and state.silent_for_s is not None
            and state.silent_for_s >= config.stale_timeout):
        memory.clear()
        return STALE, (f'no message for {state.silent_for_s:.1f} s '
                       f'(timeout {config.stale_timeout:g} s)')
    if snap is None or snap.messages_total == 0:
        memory.clear()
        return OK, 'waiting for the first message'

    findings: List[Tuple[int, str]] = []
    h = config.hysteresis

    def check(key: str, value: float, warn: float, error: float, above: bool,
              margin: float = h) -> int:
        lvl = held_level(value, warn, error, above, memory.get(key, OK), margin)
        memory[key] = lvl
        return lvl

    rate = snap.rate_hz
    if rate is None:
        # Fewer than two messages in the window: a slow topic is not at 0 Hz, so only judge it
        # when the minimum rate promises at least two.
        memory.pop('rate_low', None)
        memory.pop('rate_high', None)
        if config.min_rate and config.min_rate * snap.window_s >= 2:
            findings.append((ERROR, f'under 2 messages in {snap.window_s:g} s '
                                    f'({config.min_rate:g} Hz min)'))
    else:
        lo = config.min_rate
        if lo:
            lvl = check('rate_low', rate, lo, lo * ERROR_RATE_FRACTION, above=False)
            if lvl == ERROR and rate < lo * ERROR_RATE_FRACTION:
                findings.append((ERROR, f'rate {rate:.1f} Hz below half of {lo:g} Hz min'))
            elif lvl == ERROR:
                findings.append((ERROR, f'rate {rate:.1f} Hz: clears at '
                                        f'{lo * ERROR_RATE_FRACTION * (1 + h):.1f} Hz '
                                        f'(half of {lo:g} Hz min)'))
            elif lvl == WARN and rate < lo:
                findings.append((WARN, f'rate {rate:.1f} Hz below {lo:g} Hz min'))
            elif lvl == WARN:
                findings.append((WARN, f'rate {rate:.1f} Hz: clears at {lo * (1 + h):.1f} Hz '
                                       f'({lo:g} Hz min)'))
        hi = config.max_rate
        if hi:
            lvl = check('rate_high', rate, hi, 0.0, above=True)
            if lvl and rate > hi:
                findings.append((WARN, f'rate {rate:.1f} Hz above {hi:g} Hz max'))
            elif lvl:
                findings.append((WARN, f'rate {rate:.1f} Hz: clears at {hi * (1 - h):.1f} Hz '
                                       f'({hi:g} Hz max)'))
    lat = snap.header_latency
    limit = config.max_latency
    if limit and lat is not None:
        p95 = lat.p95
        lvl = check('latency', p95, limit, limit * ERROR_LATENCY_FACTOR, above=True)
        if lvl == ERROR and p95 > limit * ERROR_LATENCY_FACTOR:
            findings.append((ERROR, f'latency p95 {_ms(p95)} above twice {_ms(limit)} max'))
        elif lvl == ERROR:
            findings.append((ERROR, f'latency p95 {_ms(p95)}: clears at '
                                    f'{_ms(limit * ERROR_LATENCY_FACTOR * (1 - h))} '
                                    f'(twice {_ms(limit)} max)'))
        elif lvl == WARN and p95 > limit:
            findings.append((WARN, f'latency p95 {_ms(p95)} above {_ms(limit)} max'))
        elif lvl == WARN:
            findings.append((WARN, f'latency p95 {_ms(p95)}: clears at '
                                   f'{_ms(limit * (1 - h))} ({_ms(limit)} max)'))
    else:
        memory.pop('latency', None)
    dropped = snap.dropped_window
    expected = snap.window_messages + dropped
    ratio = dropped / expected if expected else 0.0
    if config.drop_warn_ratio and snap.drops_measurable:
        # One lost datagram of a best-effort stream is no news: it takes two to enter WARN.
        value = ratio if dropped >= 2 or memory.get('drops', OK) else 0.0
        # Drops are small counts (10 of 1,000 at 1 %): a few percent of the limit would be less
        # than one message, so they clear at half the ratio.
        lvl = check('drops', value, config.drop_warn_ratio, 0.0, above=True,
                    margin=DROP_CLEAR_MARGIN if h else 0.0)
        if lvl and ratio > config.drop_warn_ratio:
            findings.append((WARN, f'drops {ratio:.1%} above {config.drop_warn_ratio:.1%} max: '
                                   f'{dropped} of {expected} in {snap.window_s:g} s'))
        elif lvl:
            findings.append((WARN, f'drops {ratio:.1%}: clears at '
                                   f'{config.drop_warn_ratio * (1 - DROP_CLEAR_MARGIN):.1%} '
                                   f'({dropped} of {expected} in {snap.window_s:g} s)'))
    else:
        memory.pop('drops', None)
    if snap.own_lost_window:
        findings.append((WARN, f'monitor fell behind: lost {snap.own_lost_window} in '
                               f'{snap.window_s:g} s'))
    if snap.zero_stamps_window:
        findings.append((WARN, f'{_n(snap.zero_stamps_window, "zero header stamp")} in '
                               f'{snap.window_s:g} s'))
    if snap.negative_stamps_window:
        findings.append((WARN, f'{_n(snap.negative_stamps_window, "negative header stamp")} in '
                               f'{snap.window_s:g} s'))
    if snap.future_stamps_window:
        findings.append((WARN, f'{_n(snap.future_stamps_window, "header stamp")} in the future '
                               '(clock skew?)'))
    if findings:
        findings.sort(key=lambda f: -f[0])     # the worst first (stable): it says why
        return findings[0][0], join_findings([text for _, text in findings])
    text = f'{rate:.1f} Hz' if rate is not None else \
        f'rate unknown (under 2 messages in {snap.window_s:g} s)'
    text += f', {byte_rate(snap.bandwidth_bps)}'
    if lat is not None:
        text += f', latency p95 {_ms(lat.p95)}'
    return OK, text


def report(name: str, config: TopicConfig, state: TopicState,
           snap: Optional[TopicSnapshot], held: Optional[Dict[str, int]] = None) -> TopicReport:
    level, message = evaluate(config, state, snap, held)
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
    if c.drop_warn_ratio:
        kv.append(('drops warn above (%)', percent(c.drop_warn_ratio, 2)))
    kv.append(('hysteresis (%)', percent(c.hysteresis)))
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
        expected = s.window_messages + s.dropped_window
        kv += [('dropped in window', str(s.dropped_window)),
               ('drop ratio in window (%)',
                percent(s.dropped_window / expected if expected else 0.0, 2)),
               ('dropped total', str(s.dropped_total)),
               ('lost by the monitor total', str(s.own_lost_total))]
    else:
        kv += [('dropped total', str(s.dropped_total)),
               ('drops measured', 'no: several publishers')]
    if (s.zero_stamps_total or s.future_stamps_total or s.unreadable_stamps_total
            or s.negative_stamps_total):
        kv += [('zero stamps total', str(s.zero_stamps_total)),
               ('negative stamps total', str(s.negative_stamps_total)),
               ('future stamps total', str(s.future_stamps_total)),
               ('unreadable stamps total', str(s.unreadable_stamps_total))]
    return kv
