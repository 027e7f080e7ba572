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
from typing import Any, Iterator, List, Optional

import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..core.diagnostics import WARN
from ..core.msg_types import import_message_type
from ..core.params import ConfigError
from ..core.ros_params import declare_all, user_overrides
from ..core.runner import node_main
from ..instrument import InferenceMonitor
from .config import INFERENCE_PARAMS, InferenceConfig, parse_inference_config
from .control_loop import STALE, ControlLoop
from .controller import NON_FINITE_INPUT, NON_FINITE_OUTPUT, STEP_FAILED, input_timeout, nominal_dt
from .controller import OK as STEP_OK
from .fields import has_header, numeric_getters, numeric_setters
from .loading import LoadedModel, compilations, load_for_controller

NODE_NAME = 'liquid_inference'


class LiquidInference(Node):
    """Runs the network on each input (or at `control_rate`) and publishes the command."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        values = declare_all(self, INFERENCE_PARAMS)
        self.config: InferenceConfig = parse_inference_config(
            values, hostname=socket.gethostname(), given=user_overrides(self))
        c = self.config
        self._setup_messages(c)
        loaded = load_for_controller(c.model_path, len(c.features), len(c.outputs),
                                     c.hold_on_non_finite, lambda m: nominal_dt(m, c.dt_default))
        self._install(loaded)
        self.monitor = InferenceMonitor(
            self, loaded.info, config=c.monitor, input_topic=c.input_topic,
            output_topic=c.output_topic, span_name=f'{NODE_NAME}.callback',
            input_timeout_s=input_timeout(c.monitor.input_timeout, loaded.model, c.dt_default),
            deadline_s=1.0 / c.control_rate if c.control_rate else 0.0)
        self.loop = ControlLoop(self.controller, self.monitor.freshness, self.dt0, c.dt_max,
                                c.on_input_stale, repeat_stale=bool(c.control_rate))
        self.monitor.on_input_stale(self._send_stale_command, action=self._stale_action())
        self.monitor.extend_status('model', self._status_model)
        self.monitor.extend_status('outputs', self._status_outputs)
        self.monitor.register(_OwnMetrics(self))
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

    def _setup_messages(self, c: InferenceConfig) -> None:
        """Message classes and the field accessors, checked against the types (one line each)."""
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
        if c.truth_topic:
            self._truth_class = self._import(c.truth_type, 'ground_truth.type')
            try:
                self._truth_get = numeric_getters(self._truth_class, c.truth_fields)
            except ValueError as exc:
                raise ConfigError('ground_truth.fields', str(exc)) from None

    def _install(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.model_path = loaded.path
        self.controller = loaded.controller
        self.dt0 = nominal_dt(loaded.model, self.config.dt_default)
        self.compilations_at_ready = compilations()
        self._x = np.zeros(loaded.model.n_inputs, dtype=np.float32)

    def _import(self, type_name: str, param: str) -> Any:
        try:
            return import_message_type(type_name)
        except ImportError as exc:
            raise ConfigError(param, str(exc)) from None

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
        if c.control_rate:
            self._control_timer = self.create_timer(1.0 / c.control_rate, self._on_control)
        if c.truth_topic:
            self.create_subscription(self._truth_class, c.truth_topic, self._on_truth, 10)

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
        with self._pre:
            x = self._x
            try:
                x[:] = self._features(msg)
            except (TypeError, ValueError):
                x[:] = np.nan       # a field that is not a number: treated as bad input
            if self._in_header:
                st = msg.header.stamp
                stamp_ns = st.sec * 1_000_000_000 + st.nanosec
            else:
                stamp_ns = self.get_clock().now().nanoseconds
        with self._fwd:
            y, status = self.loop.step(x, stamp_ns, arrival_ns, time.monotonic_ns())
        if status == STALE:        # no usable input: the stale command is no inference
            mon.skip()
            if y is not None:
                self._publish(y, None)
            return
        mon.inputs(x, received_ns=arrival_ns)
        with self._pub_stage:
            self._publish(y, msg)
            if self.loop.gap:
                mon.error('stamp_gap', f'{self.loop.last_gap_s:.3f} s on {self._in_topic} (over '
                                       f'the input timeout {mon.freshness.timeout_s:g} s): '
                                       'state reset')
            self._outcome(status, y)

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

    def _publish(self, y: np.ndarray, msg: Any) -> None:
        """Publish command `y`; a stamped command carries input `msg`'s stamp (now without one)."""
        out = self._out_msg
        for setter, v in zip(self._setters, y.tolist()):
            setter(out, v)
        if self._out_header:
            self._stamp_command(out, msg)
        self._pub.publish(out)

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
            values = self._truth_get(msg)
        except (TypeError, ValueError) as exc:
            self.monitor.error('bad_input', f'ground truth on {self.config.truth_topic}: {exc}')
            return
        self.monitor.ground_truth(values)

    # ---- what the monitor shows of this node ---------------------------------------------------

    def _status_model(self, stat: Any) -> None:
        recompiled = compilations() - self.compilations_at_ready
        if recompiled > 0:
            stat.mergeSummary(WARN, f'{recompiled} XLA recompilation(s) after warm-up')
        m = self.model
        stat.add('cell', m.cell if m.cell == 'ltc' else f'cfc/{m.mode}')
        stat.add('warm-up (compile) s', f'{self.loaded.warmup_s:.3f}')
        stat.add('jit compilations', str(compilations()))
        stat.add('state resets', str(self.controller.resets))

    def _status_outputs(self, stat: Any) -> None:
        stat.add('failed steps', str(self.metrics.errors.get('step_failed', 0)))
        stat.add('hidden state norm', f'{self.controller.state_norm():.3f}')

    def destroy_node(self) -> None:
        monitor = getattr(self, 'monitor', None)
        if monitor is not None:
            monitor.close(2.0)
        super().destroy_node()


class _OwnMetrics:
    """liquid_inference's metrics beside the monitor's: XLA compilations and the hidden state,
    read at scrape time (the state is replaced whole by each step, so reading it is safe)."""

    def __init__(self, node: LiquidInference) -> None:
        self._node = node

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        jit, norm = self._families()
        labels = self._node.metrics.labels
        jit.add_metric(labels, compilations())
        norm.add_metric(labels, self._node.controller.state_norm())
        return iter((jit, norm))

    @staticmethod
    def _families() -> List[Metric]:
        lab = ['robot', 'node']
        return [CounterMetricFamily('liquid_edge_jit_compilations',
                                    'XLA compilations in this process (flat after warm-up).',
                                    labels=lab),
                GaugeMetricFamily('liquid_edge_inference_hidden_state_norm',
                                  'L2 norm of the hidden state.', labels=lab)]


def main(args: Optional[List[str]] = None, stop: Any = None) -> int:
    from ..lnn import ModelError
    return node_main(NODE_NAME, LiquidInference, (ConfigError, ModelError, OSError), args,
                     stop=stop)


if __name__ == '__main__':
    sys.exit(main())
