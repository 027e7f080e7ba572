"""The four `/diagnostics` statuses of an instrumented node: model, latency, inputs, outputs.

Each is a function of the monitor's state (`InferenceMonitor`) written into a status wrapper, so
liquid_inference and a team's own node say the same things in the same words. A node adds its own
lines or raises a level through `InferenceMonitor.extend_status` (diagnostic_updater's
`mergeSummary`: the higher level wins).
"""
from __future__ import annotations

import time
from typing import Any

from ..core.diagnostics import ERROR, OK, WARN
from ..core.levels import WARN as WARN_INT
from .export_logs import last_error
from .quality import INPUT_PROBLEMS, words


def model(stat: Any, mon: Any) -> Any:
    info = mon.model
    label = ' '.join(p for p in (info.name, info.version) if p) or info.summary()
    stat.summary(OK, f'loaded {label}')
    stat.add('description', info.summary())
    if info.path:
        stat.add('model', info.path)
    for key, value in (('version', info.version), ('framework', info.framework),
                       ('sha256', info.sha256[:12])):
        if value:
            stat.add(key, value)
    tracing = mon.tracing
    c = tracing.config
    if not tracing.enabled or mon.sampler is None:
        stat.add('tracing', 'off')
    elif not tracing.exporting:
        stat.add('tracing', 'no endpoint: traces counted, not exported')
    else:
        stat.add('tracing', f'{c.protocol} {c.endpoint} head ratio {mon.sampler.head_ratio}, '
                            f'slow above {mon.sampler.slow_threshold_s * 1e3:.2f} ms')
    if tracing.export_failing:
        stat.mergeSummary(WARN, f'trace export failing: {tracing.failed_spans} spans lost')
        stat.add('last export error', last_error() or 'unknown')
    if mon.sampler is not None:
        stat.add('traces kept', ', '.join(f'{r} {n}' for r, n in mon.sampler.kept.items()))
    stat.add('spans exported / dropped', f'{tracing.exported_spans} / {tracing.dropped_spans}')
    return stat


def latency(stat: Any, mon: Any) -> Any:
    rec = mon.recorder
    rec.drain()
    p95 = rec.callback.quantile(0.95)
    budget = mon.config.latency_budget
    topic = mon.input_topic or 'the input'
    if p95 is None:
        stat.summary(OK, f'no input yet on {topic}')
    elif p95 > budget:
        stat.summary(WARN, f'callback p95 {p95 * 1e3:.2f} ms over {budget * 1e3:.2f} ms budget')
    else:
        stat.summary(OK, f'callback p95 {p95 * 1e3:.2f} ms')
    if p95 is not None:
        stat.add('callback p50 (ms)', f'{rec.callback.quantile(0.5) * 1e3:.3f}')
        stat.add('callback p95 (ms)', f'{p95 * 1e3:.3f}')
        for name, ring in list(rec.stage_rings.items()):
            p50 = ring.quantile(0.5)
            if p50 is not None:
                stat.add(f'{name} p50 (ms)', f'{p50 * 1e3:.3f}')
    stat.add('budget (ms)', f'{budget * 1e3:.3f}')
    stat.add('deadline misses', str(mon.metrics.deadline_misses))
    d = rec.deadline()
    stat.add('deadline (ms)', f'{d * 1e3:.3f}' if d else 'unknown')
    stat.add('inferences', str(mon.metrics.inferences))
    return stat


def inputs(stat: Any, mon: Any) -> Any:
    now = time.monotonic_ns()
    fresh = mon.freshness
    q = mon.quality
    drift = q.drift.value
    age = fresh.input_age_s(now)
    arrived = fresh.arrival_age_s(now)
    topic = mon.input_topic or 'the input'
    problem = q.recent('inputs', now)
    errors = mon.metrics.errors
    if fresh.stale and age is not None:
        flowing = arrived is not None and arrived <= fresh.timeout_s
        # The reason leads, then what the node does about it; the rest is in the keys.
        stat.summary(ERROR, f'input stale for {age:.2f} s on {topic}: {mon.stale_action()}')
        stat.add('stale action', mon.stale_action())
        stat.add('inputs arriving', 'yes, none usable' if flowing else 'no')
    elif problem is not None:
        level = WARN if INPUT_PROBLEMS.get(problem[0]) == WARN_INT else ERROR
        stat.summary(level, f'{words(*problem)} on {topic}' if not problem[1] else words(*problem))
    elif drift is not None and mon.config.drift_warn and drift > mon.config.drift_warn:
        stat.summary(WARN, f'input drift {drift:.2f} above {mon.config.drift_warn:.2f} max')
    elif not q.drift.available:
        stat.summary(OK, 'model has no training statistics: drift not scored')
    else:
        stat.summary(OK, 'inputs in distribution' if drift is not None else 'no input yet')
    stat.add('topic', topic)
    stat.add('input age (s)', f'{age:.3f}' if age is not None else 'no input yet')
    stat.add('input timeout (s)', f'{fresh.timeout_s:g}')
    stat.add('stale episodes', str(errors.get('input_stale', 0)))
    if 'stamp_gap' in errors:
        stat.add('stamp gaps', str(errors['stamp_gap']))
    stat.add('drift', f'{drift:.3f}' if drift is not None else 'n/a')
    stat.add('non-finite inputs', str(errors.get('non_finite_input', 0)))
    return stat


def outputs(stat: Any, mon: Any) -> Any:
    now = time.monotonic_ns()
    q = mon.quality
    c = mon.config
    fresh = q.truth_fresh(now)
    acc = q.accuracy.value if fresh else None
    problem = q.recent('outputs', now)
    truth = mon.truth_topic or 'ground truth'
    if problem is not None:
        stat.summary(ERROR, words(*problem))
    elif q.truth is not None and not fresh:
        stat.summary(WARN, f'ground truth {q.truth_age_s(now):.1f} s old, over '
                           f'{c.truth_max_age:g} s: accuracy not scored')
    elif acc is not None and acc < c.accuracy_warn:
        stat.summary(WARN, f'accuracy {acc:.0%} below {c.accuracy_warn:.0%} min vs {truth}')
    else:
        # What the accuracy is measured against, and over how many outputs.
        stat.summary(OK, f'accuracy {acc:.0%} vs {truth}, last {c.accuracy_window} outputs'
                     if acc is not None else
                     'publishing' if mon.metrics.inferences else 'no output yet')
    if mon.output_topic:
        stat.add('topic', mon.output_topic)
    errors = mon.metrics.errors
    stat.add('non-finite outputs', str(errors.get('non_finite_output', 0)))
    for reason, n in sorted(errors.items()):
        if reason not in INPUT_PROBLEMS and reason not in ('non_finite_output', 'input_stale') \
                and n:
            stat.add(words(reason), str(n))
    stat.add('accuracy (%)', f'{acc * 100:.1f}' if acc is not None else 'no ground truth')
    stat.add('accuracy window (outputs)', str(c.accuracy_window))
    stat.add('accuracy tolerance (output units)', f'{c.accuracy_tolerance:g}')
    if mon.truth_topic:
        stat.add('ground truth', mon.truth_topic)
    return stat
