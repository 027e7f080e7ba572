"""liquid_inference: a liquid network (CfC / LTC, JAX) as a fail-safe controller node.

The JAX model (`loading`, `controller`) and the fail-safe loop (`control_loop`) wired to the same
instrumentation a team's own node uses (`instrument.InferenceMonitor`): tail-sampled spans,
latency histograms with exemplars, drift, accuracy, deadline misses, input staleness, model info
and the `model|latency|inputs|outputs` statuses come from there, under the same names. What is
this node's own: reading features from any message type (`fields`), the stale and safe commands,
stamp gaps, failed steps, XLA recompilations and the hidden state (`liquid_edge_jit_compilations`,
`liquid_edge_inference_hidden_state_norm`).

The model is loaded, compiled and warmed up before the input subscription exists, so the first
message never waits for XLA.
"""
from __future__ import annotations

import socket
import sys
import time
from typing import Any, List, Optional

import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..core.diagnostics import ERROR, OK, WARN, FunctionDiagnosticTask, Updater
from ..core.params import ConfigError
from ..core.ros_params import declare_all, user_overrides
from ..core.runner import node_main
from ..instrument import InferenceMonitor
from .compile_threads import started_by
from .config import INFERENCE_PARAMS, InferenceConfig, parse_inference_config
from .control_loop import STALE, ControlLoop
from .controller import NON_FINITE_INPUT, NON_FINITE_OUTPUT, STEP_FAILED, input_timeout, nominal_dt
from .controller import OK as STEP_OK
from .deployment import Deployment
from .loading import CheckedModel, LoadedModel, check_model, compilations, prepare
from .messages import MessageIO
from .model_metrics import ModelMetrics
from .rollback import RollbackBounds

NODE_NAME = 'liquid_inference'


class LiquidInference(Node):
    """Runs the network on each input (or at `control_rate`) and publishes the command."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        values = declare_all(self, INFERENCE_PARAMS)
        self.config: InferenceConfig = parse_inference_config(
            values, hostname=socket.gethostname(), given=user_overrides(self))
        c = self.config
        self.io = MessageIO(c)
        checked = self._check(c.model_path)
        loaded, xla_threads = started_by(
            lambda: prepare(checked, c.hold_on_non_finite, self._dt0_of))
        self._install(loaded)
        updater = Updater(self)
        updater.setHardwareID(c.monitor.robot)
        self.monitor = InferenceMonitor(
            self, loaded.info, config=c.monitor, updater=updater, input_topic=c.input_topic,
            output_topic=c.output_topic, truth_topic=c.truth_topic,
            span_name=f'{NODE_NAME}.callback',
            input_timeout_s=input_timeout(c.monitor.input_timeout, loaded.model, c.dt_default),
            deadline_s=1.0 / c.control_rate if c.control_rate else 0.0)
        self.loop = ControlLoop(self.controller, self.monitor.freshness, self.dt0, c.dt_max,
                                c.on_input_stale, repeat_stale=bool(c.control_rate))
        self.monitor.on_input_stale(self._send_stale_command, action=self._stale_action())
        self.monitor.on_input_stale(lambda _age: self._reset_shadows())
        self.monitor.extend_status('model', self._status_model)
        self.monitor.extend_status('outputs', self._status_outputs)
        self.deployment = Deployment(
            loaded, lambda checked: prepare(checked, c.hold_on_non_finite, self._dt0_of,
                                            apart=True),
            RollbackBounds(c.rollback_window, c.monitor.latency_budget, c.rollback_min_accuracy,
                           c.monitor.accuracy_tolerance, c.rollback_min_agreement,
                           c.rollback_min_samples),
            c.shadow_tolerance, c.shadow_window, c.monitor.accuracy_tolerance, xla_threads)
        self._model_metrics = ModelMetrics(self)
        self.monitor.register(self._model_metrics)
        updater.add(FunctionDiagnosticTask('shadow', self._status_shadow))
        self._reverting = False
        self.add_on_set_parameters_callback(self._on_set_parameters)
        if c.shadow_model_path:
            self.deployment.request_candidate(self._check(c.shadow_model_path))
        self._deploy_timer = self.create_timer(0.1, self._deployment_tick,
                                               clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._pre = self.monitor.stage('preprocess')
        self._fwd = self.monitor.stage('forward')
        self._pub_stage = self.monitor.stage('publish')
        self._on_input = self.monitor.callback(self._infer)
        self.step_failures = 0                       # steps that raised, in a row
        self._latest: Optional[Any] = None           # (msg, info, arrival ns) for control_rate
        # Subscribe last: the network is compiled and warm by now.
        self._subscribe(c)
        self.monitor.logger.info('ready', extra={'model': self.model.describe(),
                                                 'input_topic': self._in_topic,
                                                 'output_topic': self._out_topic})
        port = self.metrics_port
        self.get_logger().info(
            f'{self.model.describe()}; {self._in_topic} -> {self._out_topic}'
            + (f' at {c.control_rate} Hz' if c.control_rate else ' per message')
            + f'; tracing {"on" if self.monitor.tracing.enabled else "off"}'
            + (f'; metrics on http://{c.monitor.metrics_address}:{port}/metrics'
               if port is not None else ''))

    # ---- set-up --------------------------------------------------------------------------------

    def _check(self, path: str) -> CheckedModel:
        c = self.config
        return check_model(path, len(c.features), len(c.outputs))

    def _dt0_of(self, model: Any) -> float:
        return nominal_dt(model, self.config.dt_default)

    def _install(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.dt0 = self._dt0_of(loaded.model)
        self.compilations_at_ready = compilations()
        self._x = np.zeros(loaded.model.n_inputs, dtype=np.float32)

    def _subscribe(self, c: InferenceConfig) -> None:
        qos_in = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=c.qos_depth,
                            reliability=(ReliabilityPolicy.BEST_EFFORT if c.best_effort
                                         else ReliabilityPolicy.RELIABLE))
        self._pub = self.create_publisher(self.io.out_class, c.output_topic, 10)
        self._out_topic = self._pub.topic_name
        # (msg, MessageInfo) callbacks: Jazzy's rclpy passes the info to a callback that takes
        # two arguments, but its annotation says one (Kilted's says either).
        handler: Any = self._on_message if not c.control_rate else self._keep_latest
        self._sub = self.create_subscription(self.io.in_class, c.input_topic, handler, qos_in)
        self._in_topic = self._sub.topic_name
        if c.control_rate:
            self._control_timer = self.create_timer(1.0 / c.control_rate, self._on_control)
        if self.io.truth_class is not None:     # imported when ground_truth.topic is named
            self.create_subscription(self.io.truth_class, c.truth_topic, self._on_truth, 10)

    @property
    def model(self) -> Any:
        """The active model (`lnn.Model`)."""
        return self.loaded.model

    @property
    def model_path(self) -> str:
        return self.loaded.path

    @property
    def controller(self) -> Any:
        """The active model's controller (its hidden state)."""
        return self.loaded.controller

    @property
    def metrics(self) -> Any:
        """The node's InferenceMetrics (the monitor's)."""
        return self.monitor.metrics

    @property
    def metrics_port(self) -> Optional[int]:
        return self.monitor.metrics_port

    # ---- control loop (executor thread) --------------------------------------------------------

    def _keep_latest(self, msg: Any, info: Any) -> None:
        self._latest = (msg, info, time.monotonic_ns())

    def _on_control(self) -> None:
        latest = self._latest
        if latest is not None:
            self._on_input(*latest)

    def _on_message(self, msg: Any, info: Any) -> None:
        self._on_input(msg, info, time.monotonic_ns())

    def _infer(self, msg: Any, info: Any, arrival_ns: Optional[int] = None) -> None:
        """One input (instrumented as `_on_input`): features, fail-safe step, command."""
        mon = self.monitor
        if arrival_ns is None:
            arrival_ns = time.monotonic_ns()
        dep = self.deployment
        if dep.pending:                  # a model swap, between two callbacks
            self._take_ready()
        with self._pre:
            x = self._x
            self.io.features(msg, x)
            stamp_ns = self.io.stamp_ns(msg)
            if stamp_ns is None:
                stamp_ns = self.get_clock().now().nanoseconds
        with self._fwd:
            y, status = self.loop.step(x, stamp_ns, arrival_ns, time.monotonic_ns())
        if status == STALE or y is None:   # no usable input: the stale command is no inference
            mon.skip()
            if y is not None:
                self._publish(y, None)
            return
        mon.inputs(x, received_ns=arrival_ns)
        with self._pub_stage:
            self._publish(y, msg)
            if self.loop.gap:
                # The topic is the status's `topic` key: with it, a long name pushed the
                # message past the 60 characters of docs/DIAGNOSTICS.md (seen in CI, 72).
                mon.error('stamp_gap', f'{self.loop.last_gap_s:.3f} s over '
                                       f'{mon.freshness.timeout_s:g} s timeout: state reset')
                self._reset_shadows()
            self._outcome(status, y)
        if dep.shadows or dep.guard is not None:
            self._after_command(x, y, status)

    def _outcome(self, status: int, y: np.ndarray) -> None:
        mon = self.monitor
        if status == STEP_OK:
            self.step_failures = 0
            mon.outputs(y)
        elif status == NON_FINITE_OUTPUT:
            mon.error('non_finite_output', 'state reset, safe command published')
        elif status == STEP_FAILED:
            self.step_failures += 1
            mon.error('step_failed', f'{self._step_error()}: state reset, safe command published '
                                     f'({self.step_failures} in a row, stop at '
                                     f'{self.config.max_step_failures})')
            if self.step_failures >= self.config.max_step_failures:
                self._give_up()
        elif status != NON_FINITE_INPUT:
            raise AssertionError(f'unknown step status {status}')

    # ---- model changes: swap, shadow, rollback (executor thread) ---------------------------------

    def _on_set_parameters(self, params: List[Parameter]) -> SetParametersResult:
        """`ros2 param set` of model_path or shadow_model_path: checked now (a bad model is refused
        with its one line, the running one stays), prepared in the background."""
        if self._reverting:
            return SetParametersResult(successful=True)
        for p in params:
            if p.name not in ('model_path', 'shadow_model_path'):
                continue
            if not isinstance(p.value, str):
                return SetParametersResult(successful=False,
                                           reason=f"parameter '{p.name}': must be a string")
            busy = self.deployment.preparer.busy_with
            if busy:
                return SetParametersResult(successful=False, reason=(
                    f"parameter '{p.name}': {busy} is being prepared; set it again when that "
                    'model runs'))
            if p.name == 'shadow_model_path' and not p.value:
                self.deployment.request_candidate(None)
                continue
            try:
                checked = self._check(p.value)
            except Exception as exc:  # noqa: BLE001 - ModelError, ConfigError, OSError: one line
                return SetParametersResult(successful=False,
                                           reason=f"parameter '{p.name}': {exc}".splitlines()[0])
            if p.name == 'model_path':
                self.deployment.request_active(checked)
            else:
                self.deployment.request_candidate(checked)
        return SetParametersResult(successful=True)

    def _take_ready(self) -> None:
        """Install what the background preparation finished (between two callbacks)."""
        dep = self.deployment
        done = dep.take_ready(time.monotonic_ns())
        if done is None:
            return
        what, value = done
        if what == 'active':
            old = self.loaded
            self._activate(value, keep_state=False)
            dep.set_note('OK', f'swapped to {value.info.name} (was {old.info.name})')
            self.get_logger().info(
                f'model swapped: {old.path} -> {value.path} ({value.model.describe()}; '
                f'{value.compiled_by}, warmed up in {value.warmup_s:.3f} s off the control '
                'thread); state reset'
                + (f'; rollback window {self.config.rollback_window:g} s'
                   if dep.guard is not None else ''))
        elif what == 'candidate':
            self.compilations_at_ready = compilations()
            self.get_logger().info(f'shadowing {value.loaded.path} ({value.loaded.model.describe()})')
        else:
            path, exc = value
            text = f'{exc}'.splitlines()[0] if str(exc) else type(exc).__name__
            dep.set_note('WARN', f'swap to {path} failed: {text}; still running {self.loaded.path}')
            self.get_logger().error(f'model {path} could not be prepared ({text}): still running '
                                    f'{self.loaded.path}')
            self._revert_parameters()

    def _activate(self, loaded: LoadedModel, keep_state: bool) -> None:
        self._install(loaded)
        self.loop.swap(loaded.controller, self.dt0, keep_state)
        self.monitor.set_model(loaded.info)

    def _after_command(self, x: np.ndarray, y: np.ndarray, status: int) -> None:
        """After the command is out: the shadows step (within their share of the deadline), and
        a rollback window judges the new model."""
        mon = self.monitor
        dep = self.deployment
        cb = mon.recorder.current()
        now = time.monotonic_ns()
        used = (now - cb.t0) * 1e-9 if cb is not None else 0.0
        q = mon.quality
        truth = q.truth if q.truth_fresh(now) else None
        ok = status == STEP_OK
        active_y = np.asarray(y, dtype=np.float64) if ok else None
        if status != NON_FINITE_INPUT:
            deadline = mon.recorder.deadline()
            share = self.config.shadow_max_share
            for shadow in list(dep.shadows.values()):
                if shadow.fits(used, deadline, share):
                    shadow.step(x, self.loop.last_dt, active_y, truth, time.monotonic_ns)
                else:
                    shadow.skipped += 1
        guard = dep.guard
        if guard is not None and status != NON_FINITE_INPUT:
            warmed = guard.note(status in (NON_FINITE_OUTPUT, STEP_FAILED), used, active_y, truth)
            if warmed and 'previous' in dep.shadows:      # agreement from a settled state on
                dep.shadows['previous'].restart_comparison()
            if guard.failures:
                self._roll_back('non_finite')

    def _deployment_tick(self) -> None:
        """Steady timer (10 Hz): installs what is ready when no input comes, judges and closes the
        rollback window."""
        dep = self.deployment
        if dep.pending:
            self._take_ready()
        self._model_metrics.update()
        guard = dep.guard
        if guard is None:
            return
        previous = dep.shadows.get('previous')
        reason = guard.breach(previous.agreement if previous is not None else None)
        if reason is not None:
            self._roll_back(reason)
        elif dep.close_window(time.monotonic_ns()):
            self.get_logger().info(f'model {self.loaded.path} kept: no bound breached in '
                                   f'{self.config.rollback_window:g} s')

    def _roll_back(self, reason: str) -> None:
        bad, restored = self.deployment.roll_back(reason)
        self._activate(restored, keep_state=True)
        text = f'rolled back from {bad.info.name} to {restored.info.name}: {_ROLLBACK_WORDS[reason]}'
        self.deployment.set_note('WARN', text)
        self.get_logger().error(f'model {text}; running {restored.path} again')
        self._revert_parameters()

    def _revert_parameters(self) -> None:
        """model_path says what runs (after a rollback or a failed preparation)."""
        self._reverting = True
        try:
            self.set_parameters([Parameter('model_path', value=self.loaded.path)])
        finally:
            self._reverting = False

    def _reset_shadows(self) -> None:
        for shadow in list(self.deployment.shadows.values()):
            shadow.reset()

    def _publish(self, y: np.ndarray, msg: Any) -> None:
        """Publish command `y` (stamped with input `msg`'s stamp, or now without one)."""
        self._pub.publish(self.io.command(y, msg, self._now_msg))

    def _now_msg(self) -> Any:
        return self.get_clock().now().to_msg()

    # ---- stale input: never act on input the node no longer has --------------------------------

    def input_age(self) -> Optional[float]:
        """Seconds since the latest usable input (None before any input)."""
        return self.monitor.freshness.input_age_s(time.monotonic_ns())

    def _send_stale_command(self, _age_s: float) -> None:
        """The input went stale (the loop has reset the state and forgotten the last good
        command): without a control rate nothing else would send the stale command, so send it
        once now; with one, each tick does."""
        command = self.loop.stale_command
        if not self.loop.repeat_stale and command is not None:
            self._publish(command, None)

    def _stale_action(self) -> str:
        how = self.config.on_input_stale
        if how == 'stop':
            return 'state reset, publishing nothing'
        what = 'the zero command' if how == 'zero' else 'the last good command'
        return f'state reset, publishing {what}' + (
            f' at {self.config.control_rate:g} Hz' if self.config.control_rate else ' once')

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
            values = self.io.truth(msg)
        except (TypeError, ValueError) as exc:
            self.monitor.error('bad_input', f'ground truth on {self.config.truth_topic}: {exc}')
            return
        self.monitor.ground_truth(values)

    # ---- what the monitor shows of this node ---------------------------------------------------

    def _status_model(self, stat: Any) -> None:
        dep = self.deployment
        recompiled = compilations() - self.compilations_at_ready
        if recompiled > 0 and not dep.preparer.busy:
            stat.mergeSummary(WARN, f'{recompiled} XLA recompilation(s) after warm-up')
        if dep.note is not None:
            level, text, _ = dep.note
            if level == 'WARN':              # until the next deliberate change
                stat.mergeSummary(WARN, text)
            stat.add('last change', text)
        if dep.guard is not None:
            left = self.config.rollback_window - (time.monotonic_ns() - dep.guard.started_ns) * 1e-9
            stat.add('rollback window left (s)', f'{max(0.0, left):.1f}')
        if dep.preparer.busy_with:
            stat.add('preparing', dep.preparer.busy_with)
        m = self.model
        stat.add('cell', m.cell if m.cell == 'ltc' else f'cfc/{m.mode}')
        stat.add('warm-up and compile (s)', f'{self.loaded.warmup_s:.3f}')
        stat.add('jit compilations', str(compilations()))
        stat.add('state resets', str(self.controller.resets))

    def _status_outputs(self, stat: Any) -> None:
        stat.add('failed steps', str(self.metrics.errors.get('step_failed', 0)))
        stat.add('hidden state norm', f'{self.controller.state_norm():.3f}')

    def _status_shadow(self, stat: Any) -> Any:
        shadows = dict(self.deployment.shadows)
        if not shadows:
            stat.summary(OK, 'no shadow model' + (f' (preparing {self.deployment.preparer.busy_with})'
                                                  if self.deployment.preparer.busy_with else ''))
            return stat
        stat.summary(OK, '')
        for role, sh in sorted(shadows.items()):
            agree = sh.agreement.value
            p50 = sh.latency.quantile(0.5)
            text = (f'{role} {sh.loaded.info.name}: '
                    + (f'agrees {agree:.2f}' if agree is not None else 'no comparison yet'))
            errors = sum(sh.errors.values())
            if errors:
                stat.mergeSummary(ERROR, f'{text}, {errors} non-finite or failed steps')
            elif sh.skipped > 0.1 * max(1, sh.steps + sh.skipped):
                stat.mergeSummary(WARN, f'{text}, skips {sh.skipped} inputs (over '
                                        f'{self.config.shadow_max_share:g} of the deadline)')
            else:
                stat.mergeSummary(OK, text)
            stat.add(f'{role} model', sh.loaded.path)
            stat.add(f'{role} agreement', f'{agree:.3f}' if agree is not None else 'n/a')
            stat.add(f'{role} p50 (ms)', f'{p50 * 1e3:.3f}' if p50 is not None else 'n/a')
            stat.add(f'{role} steps / skipped', f'{sh.steps} / {sh.skipped}')
            if sh.accuracy.value is not None:
                stat.add(f'{role} accuracy', f'{sh.accuracy.value:.3f}')
        return stat

    def destroy_node(self) -> None:
        deployment = getattr(self, 'deployment', None)
        if deployment is not None:
            deployment.preparer.join(5.0)      # a compile in progress: let it end, then go
        monitor = getattr(self, 'monitor', None)
        if monitor is not None:
            monitor.close(2.0)
        super().destroy_node()


_ROLLBACK_WORDS = {'non_finite': 'a non-finite output or a failed step',
                   'latency': 'callback p95 above the latency budget',
                   'accuracy': 'accuracy below rollback.min_accuracy',
                   'divergence': 'outputs diverged from the previous model\'s'}


def main(args: Optional[List[str]] = None, stop: Any = None) -> int:
    from ..lnn import ModelError
    return node_main(NODE_NAME, LiquidInference, (ConfigError, ModelError, OSError), args,
                     stop=stop)


if __name__ == '__main__':
    sys.exit(main())
