"""liquid_inference: a liquid network (CfC / LTC, JAX) as a controller node, traced and measured.

A thin ROS node around the pure cores: `lnn` (the network), `controller` (guarded step, drift,
accuracy, latency ring), `config` (parameters), `fields` (feature paths), `tracing`
(OpenTelemetry), `energy` and `metrics`. The model is loaded, compiled and warmed up before the
input subscription exists, so the first message never waits for XLA.

Tracing is tail-sampled (`tail_sampling`): every callback notes a trace id (which its JSON log
lines carry) and four wall-clock marks, and decides at its end whether the trace is kept: always
for an error, a deadline miss, a slow callback or one of the first callbacks (rate-limited), else at
the head sampling ratio. A kept callback is handed to `trace_export` as a compact record and
becomes the span tree `liquid_inference.callback` > `preprocess`, `forward`, `publish` on another
thread; the SDK's batch processor exports it, so a slow or dead collector never reaches the control
loop. Kept traces are also the latency histograms' exemplars. Histograms, power and the
hidden-state norm are refreshed by a timer every `update_period`, not per message.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import socket
import sys
import time
from collections import deque
from typing import Any, Deque, List, Optional, Tuple

import numpy as np
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..core.diagnostics import ERROR, OK, WARN, FunctionDiagnosticTask, Updater
from ..core.exposition import attach, detach
from ..core.jsonlog import trace_ids
from ..core.msg_types import import_message_type
from ..core.params import ConfigError
from ..core.ros_params import declare_all, user_overrides
from ..core.runner import node_main
from .config import INFERENCE_PARAMS, InferenceConfig, parse_inference_config
from .controller import (NON_FINITE_INPUT, NON_FINITE_OUTPUT, STEP_FAILED, Accuracy, Controller,
                         DriftScore, LatencyRing, LogThrottle, input_timeout, nominal_dt)
from .controller import OK as STEP_OK
from .control_loop import STALE, ControlLoop
from .fields import has_header, numeric_getters, numeric_setters
from .metrics import InferenceMetrics, model_info_labels
from .tail_sampling import TailSampler
from .trace_export import CallbackRecord, new_ids

NODE_NAME = 'liquid_inference'
_log = logging.getLogger('liquid_edge_ros_monitor.liquid_inference')

_REASONS = {NON_FINITE_INPUT: 'non_finite_input', NON_FINITE_OUTPUT: 'non_finite_output',
            STEP_FAILED: 'step_failed'}

_COMPILE_EVENT = '/jax/core/compile/backend_compile_duration'
_compilations = [0]
_listening = [False]


def _count_compilations() -> None:
    """Count XLA compilations process-wide (a recompilation after warm-up is a shape bug)."""
    if _listening[0]:
        return
    import jax

    def on_event(name: str, _secs: float, **_kw: Any) -> None:
        if name == _COMPILE_EVENT:
            _compilations[0] += 1
    jax.monitoring.register_event_duration_secs_listener(on_event)
    _listening[0] = True


def default_model_path() -> str:
    from ..core.share import share_dir
    return str(share_dir() / 'models' / 'imu_velocity.npz')


class LiquidInference(Node):
    """Runs the network on each input (or at `control_rate`) and publishes the command."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        values = declare_all(self, INFERENCE_PARAMS)
        self.config: InferenceConfig = parse_inference_config(
            values, hostname=socket.gethostname(), given=user_overrides(self))
        c = self.config
        self._json_handler = None
        if c.json_logging:
            from ..core.jsonlog import enable_json_logging
            self._json_handler = enable_json_logging('liquid_edge_ros_monitor')
        _log.setLevel(logging.INFO)
        self._load(c)
        self._setup_tracing(c)
        self.metrics = InferenceMetrics(c.robot, self.get_fully_qualified_name())
        # Deployment tracking and span-queue drops, exported with the other metrics.
        self.metrics.model_info = model_info_labels(self.model_path, self.model)
        self.metrics.tracing = self.tracing
        self._endpoint = attach(self.metrics, c.metrics_address, c.metrics_port)
        self.metrics_port: Optional[int] = self._endpoint.port if self._endpoint else None
        self._updater = Updater(self)
        self._updater.setHardwareID(c.robot)
        for name, fn in (('model', self._status_model), ('latency', self._status_latency),
                         ('inputs', self._status_inputs), ('outputs', self._status_outputs)):
            self._updater.add(FunctionDiagnosticTask(name, fn))
        self._energy = self._make_energy(c)
        self._last_update = time.monotonic()
        self._timer = self.create_timer(c.update_period, self._update,
                                        clock=Clock(clock_type=ClockType.STEADY_TIME))
        # Subscribe last: the network is compiled and warm by now.
        self._subscribe(c)
        _log.info('ready', extra={'model': self.model.describe(), 'input_topic': self._in_topic,
                                  'output_topic': self._out_topic})
        self.get_logger().info(
            f'{self.model.describe()}; {self._in_topic} -> {self._out_topic}'
            + (f' at {c.control_rate} Hz' if c.control_rate else ' per message')
            + f'; tracing {"on" if self.tracing.enabled else "off"}'
            + (f'; metrics on http://{c.metrics_address}:{self.metrics_port}/metrics'
               if self.metrics_port is not None else ''))

    # ---- set-up --------------------------------------------------------------------------------

    def _load(self, c: InferenceConfig) -> None:
        import jax
        try:
            # Run each step on the calling thread: for a small cell, handing it to XLA's CPU
            # thread and waiting for the result costs more than the step (BENCHMARKS: profile).
            # Must precede the first computation; a JAX without the flag keeps async dispatch.
            jax.config.update('jax_cpu_enable_async_dispatch', False)
        except (AttributeError, KeyError, ValueError):
            pass
        from ..lnn import load_model
        path = c.model_path or default_model_path()
        self.model = load_model(path)                  # ModelError: one line naming the tensor
        self.model_path = path
        m = self.model
        if len(c.features) != m.n_inputs:
            raise ConfigError('features', f'lists {len(c.features)} fields but the model '
                              f'{os.path.basename(path)} takes {m.n_inputs} inputs')
        if len(c.outputs) != m.n_outputs:
            raise ConfigError('outputs', f'lists {len(c.outputs)} fields but the model '
                              f'{os.path.basename(path)} gives {m.n_outputs} outputs')
        self._in_class = self._import(c.input_type, 'input_type')
        self._out_class = self._import(c.output_type, 'output_type')
        try:
            self._features = numeric_getters(self._in_class, c.features)
        except ValueError as exc:
            raise ConfigError('features', str(exc)) from None
        try:
            self._setters = numeric_setters(self._out_class, c.outputs)
        except ValueError as exc:
            raise ConfigError('outputs', str(exc)) from None
        self._in_header = has_header(self._in_class)
        self._truth = None
        self._truth_mono = 0.0       # monotonic receipt time of the truth
        if c.truth_topic:
            self._truth_class = self._import(c.truth_type, 'ground_truth.type')
            try:
                self._truth_get = numeric_getters(self._truth_class, c.truth_fields)
            except ValueError as exc:
                raise ConfigError('ground_truth.fields', str(exc)) from None
        self.controller = Controller(m, c.hold_on_non_finite)
        self.dt0 = nominal_dt(m, c.dt_default)
        self.input_timeout = input_timeout(c.input_timeout, m, c.dt_default)
        self.loop = ControlLoop(self.controller, self.input_timeout, self.dt0, c.dt_max,
                                c.on_input_stale, repeat_stale=bool(c.control_rate))
        self.loop.on_stale = self._on_stale
        self.loop.on_back = self._on_back
        _count_compilations()
        t0 = time.perf_counter()
        self.controller.warm_up(self.dt0)
        self.warmup_s = time.perf_counter() - t0
        self.compilations_at_ready = _compilations[0]
        self.drift = DriftScore(m.input_mean, m.input_std, c.drift_window)
        self.accuracy = Accuracy(c.accuracy_tolerance, c.accuracy_window)
        self.callback_lat = LatencyRing()
        self.forward_lat = LatencyRing()
        self._x = np.zeros(m.n_inputs, dtype=np.float32)
        self.step_failures = 0                       # steps that raised, in a row
        self._throttles = {'non_finite_output': LogThrottle(), 'step_failed': LogThrottle(),
                           'stamp_gap': LogThrottle()}
        self._latest: Optional[Any] = None           # (msg, info, arrival ns) for control_rate
        self.last_problem: Optional[str] = None
        self.last_problem_ns = 0

    def _import(self, type_name: str, param: str) -> Any:
        try:
            return import_message_type(type_name)
        except ImportError as exc:
            raise ConfigError(param, str(exc)) from None

    def _setup_tracing(self, c: InferenceConfig) -> None:
        from .tracing import TracingConfig, setup_tracing
        try:
            tc = TracingConfig.from_env(c.tracing, parameter_prefix='tracing.')
        except ValueError as exc:
            raise ConfigError('tracing', str(exc)) from None
        # The node decides which callbacks are traced (tail sampling, with the ratio as its head
        # sampling share) and the SDK keeps every span it is given: an untraced callback costs no
        # span at all.
        self.sampling_ratio = tc.sampling_ratio
        if tc.enabled:
            tc = dataclasses.replace(tc, sampling_ratio=1.0)
        self.tracing = setup_tracing(tc, {
            'ros.node.name': self.get_name(), 'ros.node.namespace': self.get_namespace(),
            'ros.domain_id': os.environ.get('ROS_DOMAIN_ID', '0')})
        self._kept = self.tracing.kept                  # None when tracing is off
        self.slow_threshold = c.slow_threshold or c.latency_budget
        self.sampler = TailSampler(self.sampling_ratio, self.slow_threshold, c.startup_traces,
                                   c.max_anomalies_per_s)
        # Kept callbacks' (callback s, forward s, trace id, span id, wall s) for the exemplars.
        self._exemplars: Deque[Tuple[float, float, int, int, float]] = deque(maxlen=64)
        m = self.model
        self._span_attrs = {'lnn.cell': m.cell, 'lnn.mode': m.mode or '', 'lnn.units': m.units,
                            'lnn.inputs': m.n_inputs, 'lnn.outputs': m.n_outputs,
                            'ros.topic': ''}     # set once subscribed

    def _make_energy(self, c: InferenceConfig) -> Any:
        from .energy import (DEFAULT_JOULES_PER_MAC, DEFAULT_STATIC_WATTS, EnergyMeter,
                             MacEnergyModel)
        self._macs_per_step = self.model.macs_per_step()
        self._counted = 0
        self._last_joules: Optional[float] = None
        return EnergyMeter(MacEnergyModel(
            c.joules_per_mac or DEFAULT_JOULES_PER_MAC,
            c.static_watts if c.static_watts >= 0 else DEFAULT_STATIC_WATTS))

    def _subscribe(self, c: InferenceConfig) -> None:
        qos_in = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=c.qos_depth,
                            reliability=(ReliabilityPolicy.BEST_EFFORT if c.best_effort
                                         else ReliabilityPolicy.RELIABLE))
        self._pub = self.create_publisher(self._out_class, c.output_topic, 10)
        self._out_msg = self._out_class()
        self._out_header = has_header(self._out_class)
        if self._out_header and c.output_frame_id:
            self._out_msg.header.frame_id = c.output_frame_id
        self._out_topic = self._pub.topic_name
        handler = self._on_message if not c.control_rate else self._keep_latest
        self._sub = self.create_subscription(self._in_class, c.input_topic, handler, qos_in)
        self._in_topic = self._sub.topic_name
        self._span_attrs['ros.topic'] = self._in_topic
        if c.control_rate:
            self._control_timer = self.create_timer(1.0 / c.control_rate, self._on_control)
        else:       # the control tick watches the input; without one, this timer does
            self._watchdog = self.create_timer(max(self.input_timeout / 2, 0.005),
                                               self._on_watchdog,
                                               clock=Clock(clock_type=ClockType.STEADY_TIME))
        if c.truth_topic:
            self.create_subscription(self._truth_class, c.truth_topic, self._on_truth, 10)

    # ---- control loop (executor thread) --------------------------------------------------------

    def _keep_latest(self, msg: Any, info: Any) -> None:
        self._latest = (msg, info, time.monotonic_ns())

    def _on_control(self) -> None:
        latest = self._latest
        if latest is not None:
            self._on_input(*latest)

    def _on_message(self, msg: Any, info: Any) -> None:
        self._on_input(msg, info, time.monotonic_ns())

    def _on_watchdog(self) -> None:
        """Without control_rate nothing steps when the input stops: say so, once per outage."""
        _stale, command = self.loop.watch(time.monotonic_ns())
        if command is not None:
            self._publish(command, None)

    # ---- stale input: never act on input the node no longer has --------------------------------

    def input_age(self) -> Optional[float]:
        """Seconds since the latest usable input (None before any input)."""
        return self.loop.input_age_s(time.monotonic_ns())

    def _on_stale(self, age: float) -> None:
        """The loop went stale (it has reset the state and forgotten the last good command)."""
        self.metrics.errors['input_stale'] += 1
        self.get_logger().error(f'input stale for {age:.3f} s on {self._in_topic} (timeout '
                                f'{self.input_timeout:g} s): state reset, {self._stale_action()}')

    def _on_back(self) -> None:
        self.get_logger().info(f'input back on {self._in_topic}: stepping again from a reset state')

    def _stale_action(self) -> str:
        how = self.config.on_input_stale
        if how == 'stop':
            return 'publishing nothing'
        what = 'the zero command' if how == 'zero' else 'the last good command'
        return f'publishing {what}' + (f' at {self.config.control_rate:g} Hz'
                                        if self.config.control_rate else ' once')

    def _publish(self, y: np.ndarray, msg: Any) -> None:
        """Publish command `y`; a stamped command carries input `msg`'s stamp (now without one)."""
        out = self._out_msg
        for setter, v in zip(self._setters, y.tolist()):
            setter(out, v)
        if self._out_header:
            self._stamp_command(out, msg)
        self._pub.publish(out)

    def _on_input(self, msg: Any, info: Any, arrival_ns: Optional[int] = None) -> None:
        """One input: features, step, command; its trace kept or not at the end.

        With tracing on, the callback costs two random ids, four clock reads and a ContextVar
        set/reset more than without; only a kept one builds a record (a dict and a tuple), and
        its spans are made on another thread."""
        t0 = time.perf_counter()
        if arrival_ns is None:
            arrival_ns = time.monotonic_ns()
        stamp_ns = None
        if self._in_header:
            st = msg.header.stamp
            stamp_ns = st.sec * 1_000_000_000 + st.nanosec
        kept = self._kept
        if kept is None:
            status = self._process(msg, stamp_ns, arrival_ns, None)
        else:
            m0 = time.time_ns()
            ids = new_ids()
            token = trace_ids.set(ids)
            try:
                marks = [m0, 0, 0, 0]
                status = self._process(msg, stamp_ns, arrival_ns, marks)
            finally:
                trace_ids.reset(token)
        if status == STALE:
            return           # no usable input: the stale command is no inference
        took = time.perf_counter() - t0
        self.callback_lat.add(took)
        deadline = self._deadline()
        if deadline and took > deadline:
            self.metrics.deadline_misses += 1
        if kept is None:
            return
        gap = self.loop.gap
        reason = self.sampler.decide(status != STEP_OK or gap, took, deadline, t0)
        if reason is None:
            return
        attrs = self._callback_attributes(msg, info, stamp_ns)
        attrs['liquid_edge.keep_reason'] = reason
        error = _REASONS.get(status) or ('stamp_gap' if gap else None)
        if error:
            attrs['lnn.error'] = error
        if kept.put(CallbackRecord(ids[0], ids[1], tuple(marks), attrs, error)):
            self._exemplars.append((took, (marks[2] - marks[1]) * 1e-9, ids[0], ids[1],
                                    marks[0] * 1e-9))

    def _callback_attributes(self, msg: Any, info: Any, stamp_ns: Optional[int]) -> dict:
        """The root span's attributes (built only for a kept callback)."""
        attrs = dict(self._span_attrs)
        attrs['dds.publication_sequence_number'] = int(info.get('publication_sequence_number', 0))
        if stamp_ns is not None:
            attrs['ros.header.stamp_ns'] = stamp_ns
            attrs['ros.header.frame_id'] = msg.header.frame_id
        return attrs

    def _process(self, msg: Any, stamp_ns: Optional[int], arrival_ns: int,
                 marks: Optional[list]) -> int:
        """The callback's work; returns the loop's status. With `marks` (tracing on): fills in the
        wall-clock ns at the stage boundaries (features done, step done, published)."""
        x = self._x
        try:
            x[:] = self._features(msg)
        except (TypeError, ValueError):
            x[:] = np.nan       # a field that is not a number: treated as bad input
        if marks is not None:
            marks[1] = time.time_ns()
        f0 = time.perf_counter()
        y, status = self.loop.step(
            x, stamp_ns if stamp_ns is not None else self.get_clock().now().nanoseconds,
            arrival_ns, time.monotonic_ns())
        if status == STALE:
            if y is not None:
                self._publish(y, None)
            return STALE
        self.forward_lat.add(time.perf_counter() - f0)
        if marks is not None:
            marks[2] = time.time_ns()
        if status != NON_FINITE_INPUT:
            self.drift.add(x)
        self._publish(y, msg)
        if self.loop.gap:
            self._gap()
        if status == STEP_FAILED:
            self.step_failures += 1
        elif status == 0:
            self.step_failures = 0
        if status:
            self._problem(status)
            if self.step_failures >= self.config.max_step_failures:
                self._give_up()
        self.metrics.inferences += 1
        if self._truth is not None and self.truth_age() <= self.config.truth_max_age:
            self.accuracy.add(y, self._truth)     # never against truth of any age
        if marks is not None:
            marks[3] = time.time_ns()
        return status

    def _stamp_command(self, out: Any, msg: Any) -> None:
        """A stamped command carries its input's stamp (receipt time for a headerless input, now
        for a stale command, which has no input) and, unless `output_frame_id` is set, its
        frame."""
        if msg is not None and self._in_header:
            out.header.stamp = msg.header.stamp
            if not self.config.output_frame_id:
                out.header.frame_id = msg.header.frame_id
        else:
            out.header.stamp = self.get_clock().now().to_msg()

    def _deadline(self) -> Optional[float]:
        c = self.config
        if c.control_period:
            return c.control_period
        if c.control_rate:
            return 1.0 / c.control_rate
        return self.loop.period_ema

    def _gap(self) -> None:
        """The input's stamps jumped by more than input_timeout: the loop reset the state and
        stepped with the nominal period. Counted, reported, logged (throttled)."""
        self.metrics.errors['stamp_gap'] += 1
        self.last_problem = 'stamp_gap'
        self.last_problem_ns = time.monotonic_ns()
        held = self._throttles['stamp_gap'].allow(time.monotonic())
        if held is not None:
            _log.warning(f'{self._gap_text()}' + (f' ({held} similar messages suppressed)'
                                                  if held else ''), extra={'reason': 'stamp_gap'})

    def _gap_text(self) -> str:
        return (f'stamp gap of {self.loop.last_gap_s:.3f} s on {self._in_topic} (over the input '
                f'timeout {self.input_timeout:g} s): state reset')

    def _problem(self, status: int) -> None:
        reason = _REASONS[status]
        self.metrics.errors[reason] += 1
        self.last_problem = reason
        self.last_problem_ns = time.monotonic_ns()
        if status == NON_FINITE_INPUT:
            return
        if status == NON_FINITE_OUTPUT:
            text = 'non-finite output: state reset, safe command published'
        else:
            text = (f'network step failed ({self.step_failures} in a row, stop at '
                    f'{self.config.max_step_failures}): {self._step_error()}: state reset, '
                    'safe command published')
        # Once per throttle interval (a fault per message would be 200 lines/s at 200 Hz), inside
        # the callback so the JSON log line carries its trace id.
        held = self._throttles[reason].allow(time.monotonic())
        if held is not None:
            _log.error(text + (f' ({held} similar messages suppressed)' if held else ''),
                       extra={'reason': reason})

    def _step_error(self) -> str:
        exc = self.controller.last_error
        return f'{type(exc).__name__}: {exc}'.splitlines()[0] if exc is not None else 'unknown'

    def _give_up(self) -> None:
        """Too many failed steps in a row: the safe command is on the wire (published just
        before); stop the node with status 1 so a supervisor (launch respawn, systemd) sees it."""
        self.get_logger().fatal(f'{self.step_failures} network steps in a row failed (last: '
                                f'{self._step_error()}): safe command published, stopping')
        raise SystemExit(1)

    def _on_truth(self, msg: Any) -> None:
        try:
            self._truth = np.asarray(self._truth_get(msg), dtype=np.float32)
            self._truth_mono = time.monotonic()
        except (TypeError, ValueError):
            self.metrics.errors['bad_input'] += 1

    # ---- periodic (executor thread) ------------------------------------------------------------

    def _update(self) -> None:
        m = self.metrics
        m.add_latencies('callback', self.callback_lat.take_new())
        m.add_latencies('forward', self.forward_lat.take_new())
        exemplars = self._exemplars
        while exemplars:
            took, fwd, tid, sid, wall = exemplars.popleft()
            m.add_exemplar('callback', took, tid, sid, wall)
            m.add_exemplar('forward', fwd, tid, sid, wall)
        if self._kept is not None:
            m.traces_kept = dict(self.sampler.kept)
            m.traces_dropped = {'rate_limited': self.sampler.dropped['rate_limited'],
                                'queue_full': self._kept.dropped}
        m.jit_compilations = _compilations[0]
        m.drift = self.drift.value
        m.state_norm = self.controller.state_norm()
        m.accuracy = self.accuracy.value if self._truth_fresh() else None   # absent, not frozen
        now = time.monotonic()
        elapsed, self._last_update = now - self._last_update, now
        done = m.inferences
        self._energy.add_macs((done - self._counted) * self._macs_per_step)
        self._counted = done
        joules, source = self._energy.read()
        if self._last_joules is not None and elapsed > 0 and source in m.energy:
            m.power = {source: max(0.0, joules - self._last_joules) / elapsed}
        self._last_joules = joules
        m.energy = {source: joules}

    # ---- diagnostics ---------------------------------------------------------------------------

    def _recent_problem(self, within_s: float = 5.0) -> Optional[str]:
        if self.last_problem and time.monotonic_ns() - self.last_problem_ns < within_s * 1e9:
            return self.last_problem
        return None

    def _status_model(self, stat: Any) -> Any:
        m = self.model
        recompiled = _compilations[0] - self.compilations_at_ready
        if recompiled > 0:
            stat.summary(WARN, f'{recompiled} XLA recompilation(s) after warm-up')
        else:
            stat.summary(OK, f'loaded and warmed up: {m.describe()}')
        stat.add('model', self.model_path)
        stat.add('cell', m.cell if m.cell == 'ltc' else f'cfc/{m.mode}')
        stat.add('warm-up (compile) s', f'{self.warmup_s:.3f}')
        stat.add('jit compilations', str(_compilations[0]))
        stat.add('state resets', str(self.controller.resets))
        stat.add('tracing', f'{self.tracing.config.protocol} {self.tracing.config.endpoint} '
                            f'head ratio {self.sampling_ratio}, slow above '
                            f'{self.slow_threshold * 1e3:.2f} ms' if self.tracing.enabled else 'off')
        stat.add('traces kept', ', '.join(f'{r} {n}' for r, n in self.sampler.kept.items()))
        stat.add('spans exported / dropped', f'{self.tracing.exported_spans} / '
                                             f'{self.tracing.dropped_spans}')
        return stat

    def _status_latency(self, stat: Any) -> Any:
        p95 = self.callback_lat.quantile(0.95)
        fwd = self.forward_lat.quantile(0.5)
        budget = self.config.latency_budget
        if p95 is None:
            stat.summary(OK, f'no input yet on {self._in_topic}')
        elif p95 > budget:
            stat.summary(WARN, f'callback p95 {p95 * 1e3:.2f} ms over budget {budget * 1e3:.2f} ms')
        else:
            stat.summary(OK, f'callback p95 {p95 * 1e3:.2f} ms')
        if p95 is not None:
            stat.add('callback p95 ms', f'{p95 * 1e3:.3f}')
            stat.add('forward p50 ms', f'{fwd * 1e3:.3f}')
        stat.add('budget ms', f'{budget * 1e3:.3f}')
        stat.add('deadline misses', str(self.metrics.deadline_misses))
        d = self._deadline()
        stat.add('deadline ms', f'{d * 1e3:.3f}' if d else 'unknown')
        stat.add('inferences', str(self.metrics.inferences))
        return stat

    def _status_inputs(self, stat: Any) -> Any:
        drift = self.drift.value
        bad = self.metrics.errors['non_finite_input']
        age = self.input_age()
        arrived = self.loop.arrival_age_s(time.monotonic_ns())
        if self.loop.stale and age is not None:
            flowing = arrived is not None and arrived <= self.input_timeout
            stat.summary(ERROR, f'input stale for {age:.2f} s on {self._in_topic} '
                                + ('(inputs arrive, none usable) ' if flowing else '')
                                + f'(timeout {self.input_timeout:g} s): state reset, '
                                + self._stale_action())
        elif self._recent_problem() == 'stamp_gap':
            stat.summary(WARN, self._gap_text())
        elif self._recent_problem() == 'non_finite_input':
            stat.summary(ERROR, f'non-finite input on {self._in_topic}: step skipped, safe command')
        elif drift is not None and self.config.drift_warn and drift > self.config.drift_warn:
            stat.summary(WARN, f'input drift {drift:.2f} above {self.config.drift_warn:.2f}')
        elif not self.drift.available:
            stat.summary(OK, 'model has no training statistics: drift not scored')
        else:
            stat.summary(OK, 'inputs in distribution' if drift is not None else 'no input yet')
        stat.add('topic', self._in_topic)
        stat.add('input age s', f'{age:.3f}' if age is not None else 'no input yet')
        stat.add('input timeout s', f'{self.input_timeout:g}')
        stat.add('stale episodes', str(self.metrics.errors['input_stale']))
        stat.add('stamp gaps', str(self.metrics.errors['stamp_gap']))
        stat.add('drift', f'{drift:.3f}' if drift is not None else 'n/a')
        stat.add('non-finite inputs', str(bad))
        return stat

    def truth_age(self) -> float:
        return time.monotonic() - self._truth_mono

    def _truth_fresh(self) -> bool:
        return self._truth is not None and self.truth_age() <= self.config.truth_max_age

    def _status_outputs(self, stat: Any) -> Any:
        acc = self.accuracy.value if self._truth_fresh() else None
        problem = self._recent_problem()
        if problem == 'step_failed':
            stat.summary(ERROR, f'network step failed: {self._step_error()}: state reset, '
                                'safe command published')
        elif problem == 'non_finite_output':
            stat.summary(ERROR, 'non-finite output: state reset, safe command published')
        elif self._truth is not None and not self._truth_fresh():
            stat.summary(WARN, f'ground truth on {self.config.truth_topic} is '
                               f'{self.truth_age():.1f} s old (max age '
                               f'{self.config.truth_max_age:g} s): accuracy not scored')
        elif acc is not None and acc < self.config.accuracy_warn:
            stat.summary(WARN, f'accuracy {acc:.2f} below {self.config.accuracy_warn:.2f}')
        else:
            stat.summary(OK, f'accuracy {acc:.3f}' if acc is not None else
                         'publishing' if self.metrics.inferences else 'no output yet')
        stat.add('topic', self._out_topic)
        stat.add('non-finite outputs', str(self.metrics.errors['non_finite_output']))
        stat.add('failed steps', str(self.metrics.errors['step_failed']))
        stat.add('accuracy', f'{acc:.3f}' if acc is not None else 'no ground truth')
        stat.add('hidden state norm', f'{self.controller.state_norm():.3f}')
        return stat

    def destroy_node(self) -> None:
        tracing = getattr(self, 'tracing', None)
        if tracing is not None:
            tracing.shutdown(2.0)
        detach(getattr(self, 'metrics', None), getattr(self, '_endpoint', None))
        handler = getattr(self, '_json_handler', None)
        if handler is not None:
            from ..core.jsonlog import disable_json_logging
            disable_json_logging(handler)
        super().destroy_node()


def main(args: Optional[List[str]] = None, stop: Any = None) -> int:
    from ..lnn import ModelError
    return node_main(NODE_NAME, LiquidInference, (ConfigError, ModelError, OSError), args,
                     stop=stop)


if __name__ == '__main__':
    sys.exit(main())
