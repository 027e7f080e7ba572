"""`InferenceMonitor`: tracing, metrics and statuses for the inference callback of any rclpy node.

Built from the user's node, it declares its parameters on that node (under one prefix, with this
package's validation and one-line errors), uses the node's clock, logger and `/diagnostics`
updater (or makes one), and serves its metrics on its own endpoint or in a registry the user
passes. Wrap the callback, mark its stages, report what goes in and out:

    monitor = InferenceMonitor(node, ModelInfo.from_file('cfc.pt', framework='torch'))
    sub = node.create_subscription(Imu, 'imu', monitor.callback(on_imu), 10)

    def on_imu(msg):
        with monitor.stage('preprocess'):
            x = features(msg)
        monitor.inputs(x)
        with monitor.stage('forward'):
            y = model(x)
        monitor.outputs(y)
        ...

What each part costs and why it is built so: `recorder.py` (per callback), `quality.py` (inputs,
outputs, errors), `tracing.py` and `trace_export.py` (spans off the callback's thread). The
statuses are `statuses.py`; the metrics `metrics.py`; docs/INSTRUMENT.md is the user's guide.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import os
import socket
import time
from time import monotonic_ns
from typing import Any, Callable, List, Optional, Tuple, TypeVar, cast

from rclpy.clock import Clock, ClockType

from ..core.diagnostics import FunctionDiagnosticTask, Updater
from ..core.exposition import attach, detach
from ..core.jsonlog import trace_ids as _active
from ..core.params import ConfigError
from ..core.ros_params import declare_all, user_overrides
from . import statuses
from .config import (DEFAULT_PREFIX, MonitorConfig, monitor_params, parse_prefixed, prefixed)
from .energy import DEFAULT_JOULES_PER_MAC, DEFAULT_STATIC_WATTS, EnergyMeter, MacEnergyModel
from .freshness import Freshness
from .metrics import InferenceMetrics
from .model_info import ModelInfo
from .quality import SignalQuality, UnreadableValues
from .recorder import CallbackRecorder, Stage
from .tail_sampling import TailSampler

#: Input timeout when neither the parameter nor the node gives one, seconds.
DEFAULT_INPUT_TIMEOUT_S = 1.0
#: The statuses every monitor publishes, in order.
STATUS_NAMES = ('model', 'latency', 'inputs', 'outputs')
#: A callback as the user wrote it: `callback()` and `monitor_inference` return the same type,
#: so a type checker still sees its arguments and result.
F = TypeVar('F', bound=Callable[..., Any])


class InferenceMonitor:
    """Instruments one inference loop of a node. See the module docstring and docs/INSTRUMENT.md.

    `prefix`: the parameters' prefix on the node (default `liquid_edge.`); `config` instead: an
    already validated `MonitorConfig` (the node declared the parameters itself). `registry`: a
    prometheus_client `CollectorRegistry` to register the metrics in (no endpoint of ours);
    default: the endpoint of `metrics_port`. `updater`: the node's diagnostic updater (default: a
    new one). `input_topic` / `output_topic` / `truth_topic` (the ground truth's source): named on
    the statuses (resolved against the node).
    `input_timeout_s`: the timeout when the parameter is 0; `deadline_s` the callback's deadline
    when `control_period` is 0 (its control period; default: the smoothed interval between
    callbacks). `span_name`: the root span of each callback (default `<node name>.callback`).
    """

    def __init__(self, node: Any, model: ModelInfo, *, prefix: str = DEFAULT_PREFIX,
                 config: Optional[MonitorConfig] = None, registry: Any = None,
                 updater: Any = None, input_topic: str = '', output_topic: str = '',
                 truth_topic: str = '',
                 input_timeout_s: float = DEFAULT_INPUT_TIMEOUT_S, deadline_s: float = 0.0,
                 span_name: Optional[str] = None) -> None:
        self.node = node
        self.config = config if config is not None else self.declare(node, prefix)
        c = self.config
        self.model = model
        self.input_topic = _resolve(node, input_topic)
        self.output_topic = _resolve(node, output_topic)
        self.truth_topic = _resolve(node, truth_topic)
        #: Python logger of this monitor's lines (JSON with trace ids under json_logging); a node
        #: that logs through it gets the same ids on its own lines.
        self.logger = logging.getLogger(f'liquid_edge_ros_monitor.{node.get_name()}')
        self.logger.setLevel(logging.INFO)
        self._json_handler = None
        if c.json_logging:
            from ..core.jsonlog import enable_json_logging
            self._json_handler = enable_json_logging('liquid_edge_ros_monitor')
        self.freshness = Freshness(c.input_timeout or input_timeout_s)
        self._stale_actions: List[str] = []
        self.freshness.on_stale(self._on_stale)
        self.freshness.on_back(self._on_back)
        self.metrics = InferenceMetrics(c.robot, node.get_fully_qualified_name())
        self.metrics.model_info = model.labels()
        self._setup_tracing(c, span_name or f'{node.get_name()}.callback',
                            c.control_period or deadline_s)
        self.quality = SignalQuality(self.metrics, model, c.drift_window, c.accuracy_tolerance,
                                     c.accuracy_window, c.truth_max_age, self.logger)
        self._energy = EnergyMeter(MacEnergyModel(
            c.joules_per_mac or DEFAULT_JOULES_PER_MAC,
            c.static_watts if c.static_watts >= 0 else DEFAULT_STATIC_WATTS))
        self._counted = 0
        self._last_joules: Optional[float] = None
        self._last_update = time.monotonic()
        self._registry = registry
        self._collectors: List[Any] = [self.metrics]
        self._endpoint = None
        if registry is not None:
            registry.register(self.metrics)
        else:
            self._endpoint = attach(self.metrics, c.metrics_address, c.metrics_port)
        self._updater = updater if updater is not None else Updater(node)
        if updater is None:
            self._updater.setHardwareID(c.robot)
        self._extensions: dict = {name: [] for name in STATUS_NAMES}
        for name in STATUS_NAMES:
            self._updater.add(FunctionDiagnosticTask(name, functools.partial(self._status, name)))
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._timers = [
            node.create_timer(c.update_period, self.update, clock=steady),
            node.create_timer(max(self.freshness.timeout_s / 2, 0.005), self._watch,
                              clock=steady)]

    @staticmethod
    def declare(node: Any, prefix: str = DEFAULT_PREFIX) -> MonitorConfig:
        """Declare the monitoring parameters on `node` under `prefix` and validate them
        (`ConfigError`: one line naming the parameter)."""
        specs = monitor_params()
        values = declare_all(node, prefixed(specs, prefix))
        return parse_prefixed(values, prefix, user_overrides(node), socket.gethostname(), specs)

    def _setup_tracing(self, c: MonitorConfig, span_name: str, deadline_s: float) -> None:
        from .otel_env import TracingConfig
        from .tracing import setup_tracing
        try:
            tc = TracingConfig.from_env(c.tracing, parameter_prefix='tracing.')
        except ValueError as exc:
            raise ConfigError('tracing', str(exc)) from None
        # The monitor decides which callbacks are traced (tail sampling, with the ratio as its
        # head sampling share) and the SDK keeps every span it is given: an untraced callback
        # costs no span at all.
        head_ratio = tc.sampling_ratio
        if tc.enabled:
            tc = dataclasses.replace(tc, sampling_ratio=1.0)
        node = self.node
        self.tracing = setup_tracing(tc, {
            'ros.node.name': node.get_name(), 'ros.node.namespace': node.get_namespace(),
            'ros.domain_id': os.environ.get('ROS_DOMAIN_ID', '0')})
        self.sampler: Optional[TailSampler] = None
        if self.tracing.enabled:
            self.sampler = TailSampler(head_ratio, c.slow_threshold or c.latency_budget,
                                       c.startup_traces, c.max_anomalies_per_s)
        self.metrics.tracing = self.tracing
        attrs = self.model.span_attributes()
        if self.input_topic:
            attrs['ros.topic'] = self.input_topic
        self.recorder = CallbackRecorder(span_name, attrs, self.freshness, self.metrics,
                                         self.sampler, self.tracing.kept, deadline_s)
        self._stages = self.recorder.stages          # by stage()

    # ---- the callback --------------------------------------------------------------------------

    def callback(self, fn: F) -> F:
        """`fn` instrumented: timed, traced (tail-sampled), counted. An exception it raises is
        traced and counted (`reason="exception"`), then re-raised unchanged.

        Except once the node's context has shut down: rclpy's SIGTERM handler (what `ros2
        launch` escalates to) shuts the context down between two bytecodes of a running
        callback, whose `publish` then raises. That is the process stopping, not the model
        failing: it is neither counted nor re-raised, and the executor's next wait ends the spin
        as a stop (the example exited 1 with a traceback on about one SIGTERM in four)."""
        begin, end, exception = self.recorder.begin, self.recorder.end, self._exception
        context = self.node.context

        @functools.wraps(fn)
        def instrumented(*args: Any, **kwargs: Any) -> Any:
            cb = begin()
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                if not context.ok():
                    return None
                exception(exc)
                raise
            finally:
                end(cb, args)
        return cast(F, instrumented)

    def stage(self, name: str) -> Stage:
        """A context manager marking stage `name` of the running callback: its own latency
        histogram (`stage="<name>"`) and child span. Outside a callback it does nothing."""
        s = self._stages.get(name)
        return s if s is not None else self.recorder.stage(name)

    def inputs(self, values: Any, *, received_ns: Optional[int] = None) -> bool:
        """The inputs fed to the model (array, sequence or tensor). Non-finite: counted
        (`non_finite_input`), the callback traced as an error; not numbers at all: the same as
        `bad_input`; finite: scored for drift and, if it arrived within the input timeout,
        fresh input. `received_ns`: when it arrived (`time.monotonic_ns()`), for a loop that
        steps an older input; default: the callback's start. Returns whether every value is
        finite. Python floats the callback already holds are the cheapest to report: a tensor
        is read back (`tolist()`) here."""
        rec = self.recorder
        cb = _active.get()                          # rec.current(), inlined: every callback
        if cb is not None and cb.owner is not rec:
            cb = rec.current()
        if received_ns is None and cb is not None:
            arrival = now = cb.t0       # arrived as the callback began: no clock read needed
        else:
            now = monotonic_ns()
            arrival = received_ns if received_ns is not None else now
        if cb is not None:
            cb.inputs_seen = True
        try:
            ok = self.quality.check_inputs(values)
        except UnreadableValues as exc:             # reported, not raised at the user
            self.freshness.seen(arrival)
            self._unreadable('bad_input', exc)
            return False
        if ok:
            self.freshness.usable(arrival, now)
            return True
        self.freshness.seen(arrival)
        self.error('non_finite_input')
        return False

    def outputs(self, values: Any) -> bool:
        """The model's outputs. Non-finite: counted (`non_finite_output`), the callback traced as
        an error; not numbers: the same as `bad_output`; finite: scored against fresh ground
        truth. Returns whether all are finite."""
        try:
            if self.quality.check_outputs(values):
                return True
        except UnreadableValues as exc:
            self._unreadable('bad_output', exc)
            return False
        self.error('non_finite_output')
        return False

    def ground_truth(self, values: Any) -> None:
        """The true outputs for the coming callbacks (from a truth topic, a simulator): recent
        outputs are scored against it while it is younger than `ground_truth.max_age`."""
        self.quality.set_truth(values, time.monotonic_ns())

    def error(self, reason: str, detail: str = '') -> None:
        """The running callback failed: counted as `liquid_edge_inference_errors_total{reason}`,
        its trace kept as an error, shown on its status with `detail`, logged (throttled).
        `reason` is a metric label: use a small fixed set of words."""
        self.recorder.mark_error(reason)
        self.quality.report(reason, detail)

    def _unreadable(self, reason: str, exc: UnreadableValues) -> None:
        """`error(reason)`, the status saying what came and the log why it was unreadable."""
        self.recorder.mark_error(reason)
        self.quality.report(reason, exc.short, str(exc))

    def skip(self) -> None:
        """The running callback ran no inference (it waited, it sent a stale command): it is not
        counted, timed or traced."""
        cb = self.recorder.current()
        if cb is not None:
            cb.skipped = True

    def _exception(self, exc: BaseException) -> None:
        self.error('exception', f'{type(exc).__name__}: {exc}'.splitlines()[0])

    # ---- input staleness -----------------------------------------------------------------------

    def on_input_stale(self, hook: Callable[[float], None], action: str = '') -> None:
        """Call `hook(age_s)` when no usable input came for the input timeout (once per outage,
        from a timer or the next callback, on the executor's thread). `action` says what the hook
        does, on the `inputs` status ('stopping the robot')."""
        self.freshness.on_stale(hook)
        if action:
            self._stale_actions.append(action)

    def on_input_back(self, hook: Callable[[], None]) -> None:
        """Call `hook()` when usable input is back after an outage."""
        self.freshness.on_back(hook)

    def stale_action(self) -> str:
        return '; '.join(self._stale_actions) or 'no action configured'

    def _on_stale(self, age_s: float) -> None:
        errors = self.metrics.errors
        errors['input_stale'] = errors.get('input_stale', 0) + 1
        self.node.get_logger().error(
            f'input stale for {age_s:.3f} s on {self.input_topic or "the input"} (timeout '
            f'{self.freshness.timeout_s:g} s): {self.stale_action()}')

    def _on_back(self) -> None:
        self.node.get_logger().info(f'input back on {self.input_topic or "the input"}')

    def _watch(self) -> None:
        self.freshness.check(time.monotonic_ns())

    # ---- statuses, metrics ---------------------------------------------------------------------

    def extend_status(self, name: str, fn: Callable[[Any], None]) -> None:
        """`fn(stat)` runs after the monitor's own status `name` (model, latency, inputs,
        outputs): it may add key/values and `stat.mergeSummary(level, message)`."""
        if name not in self._extensions:
            raise ValueError(f"no status '{name}': one of {', '.join(STATUS_NAMES)}")
        self._extensions[name].append(fn)

    def _status(self, name: str, stat: Any) -> Any:
        getattr(statuses, name)(stat, self)
        for fn in self._extensions[name]:
            fn(stat)
        return stat

    def register(self, collector: Any) -> None:
        """Serve one more prometheus_client collector beside the monitor's metrics."""
        if self._registry is not None:
            self._registry.register(collector)
        elif self._endpoint is not None:
            attach(collector, self.config.metrics_address, self._endpoint.port)
        self._collectors.append(collector)

    @property
    def metrics_port(self) -> Optional[int]:
        """The port of the monitor's own endpoint (None: disabled, or metrics in a registry)."""
        return self._endpoint.port if self._endpoint is not None else None

    def set_model(self, model: ModelInfo) -> None:
        """A new model is running: its labels, span attributes and status from now on."""
        self.model = model
        self.metrics.model_info = model.labels()
        attrs = model.span_attributes()
        if self.input_topic:
            attrs['ros.topic'] = self.input_topic
        self.recorder.span_attributes = attrs

    def update(self) -> None:
        """Update timer (steady clock): histograms, exemplars, drift, accuracy, energy."""
        m = self.metrics
        rec = self.recorder
        rec.drain()
        m.add_latencies('callback', rec.callback.take_new())
        for name, ring in list(rec.stage_rings.items()):
            m.add_latencies(name, ring.take_new())
        exemplars = rec.exemplars
        while exemplars:
            stage, seconds, tid, sid, wall = exemplars.popleft()
            m.add_exemplar(stage, seconds, tid, sid, wall)
        if self.sampler is not None:
            kept = self.tracing.kept
            m.traces_kept = dict(self.sampler.kept)
            m.traces_dropped = {'rate_limited': self.sampler.dropped['rate_limited'],
                                'queue_full': kept.dropped if kept is not None else 0}
        q = self.quality
        q.update()
        now_ns = time.monotonic_ns()
        m.drift = q.drift.value
        m.accuracy = q.accuracy.value if q.truth_fresh(now_ns) else None   # absent, not frozen
        self._update_energy()

    def _update_energy(self) -> None:
        m = self.metrics
        now = time.monotonic()
        elapsed, self._last_update = now - self._last_update, now
        done = m.inferences
        self._energy.add_macs((done - self._counted) * self.model.macs_per_step)
        self._counted = done
        joules, source = self._energy.read()
        if self._last_joules is not None and elapsed > 0 and source in m.energy:
            m.power = {source: max(0.0, joules - self._last_joules) / elapsed}
        self._last_joules = joules
        m.energy = {source: joules}

    def close(self, timeout_s: float = 2.0) -> None:
        """Stop the timers, flush tracing (bounded), stop serving the metrics. Safe to call twice;
        call it before the node is destroyed."""
        for t in self._timers:
            self.node.destroy_timer(t)
        self._timers = []
        self.tracing.shutdown(timeout_s)
        for collector in self._collectors:
            if self._registry is not None:
                try:
                    self._registry.unregister(collector)
                except KeyError:
                    pass
            else:
                detach(collector, self._endpoint)
        self._collectors = []
        if self._json_handler is not None:
            from ..core.jsonlog import disable_json_logging
            disable_json_logging(self._json_handler)
            self._json_handler = None


def _resolve(node: Any, topic: str) -> str:
    if not topic:
        return ''
    try:
        return node.resolve_topic_name(topic)
    except Exception:  # noqa: BLE001 - a name for the statuses only
        return topic


def monitor_inference(attribute: str = 'inference_monitor') -> Callable[[F], F]:
    """Decorator for a node method: the call is instrumented by the `InferenceMonitor` found at
    `self.<attribute>` when it runs (so it can be made in `__init__`, after the method is
    defined). The method's own arguments (after `self`) are what the spans read: the message,
    and the MessageInfo if the callback takes one. Exceptions as in `InferenceMonitor.callback`."""
    def decorate(method: F) -> F:
        @functools.wraps(method)
        def instrumented(self: Any, *args: Any, **kwargs: Any) -> Any:
            mon: Optional[InferenceMonitor] = getattr(self, attribute, None)
            if mon is None:
                return method(self, *args, **kwargs)
            rec = mon.recorder
            cb = rec.begin()
            try:
                return method(self, *args, **kwargs)
            except Exception as exc:
                if not mon.node.context.ok():       # a stop, as in `callback()`
                    return None
                mon._exception(exc)
                raise
            finally:
                rec.end(cb, args)
        return cast(F, instrumented)
    return decorate


__all__: Tuple[str, ...] = ('InferenceMonitor', 'monitor_inference', 'DEFAULT_INPUT_TIMEOUT_S',
                            'STATUS_NAMES')
