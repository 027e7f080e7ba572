"""The instrumentation API's contract (`liquid_edge_ros_monitor.instrument`), through a team's own
node written here: a plain rclpy node with a numpy "model", no JAX, no node of ours.

Each test states one promise of docs/INSTRUMENT.md: parameters under a prefix with one-line
errors, nothing in prometheus_client's global registry, the user's exception re-raised unchanged
(and traced, counted), inputs/outputs checks, stages as histograms and spans, input staleness
hooks, the user's updater, the metric names the shipped alerts use, JSON logs with trace ids.
"""
from __future__ import annotations

import io
import json
import logging
import time
import types
from typing import Any, List

import numpy as np
import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter

from conftest import free_port, wait_for
from otlp_receiver import OtlpReceiver
from ros_helpers import sample_value, samples, scrape

from liquid_edge_ros_monitor.core.diagnostics import DiagnosticStatusWrapper, Updater
from liquid_edge_ros_monitor.instrument import (ConfigError, InferenceMonitor, ModelInfo,
                                                monitor_inference)

MODEL = ModelInfo(name='team_cfc', version='1.4.2', framework='numpy', cell='cfc',
                  mode='default', units=8, input_mean=[0.0, 0.0, 9.8], input_std=[1.0, 1.0, 1.0])


class TeamNode(Node):
    """What a team's inference node looks like: a subscription callback that preprocesses,
    runs its model and publishes (here: returns) the command."""

    def __init__(self, name: str, params: List[Parameter], context: Any = None,
                 **monitor_kwargs: Any) -> None:
        super().__init__(name, parameter_overrides=params, context=context)
        self.w = np.array([[0.5, -0.2, 0.0], [0.1, 0.3, 0.01]])
        self.raise_in_forward = False
        self.monitor = InferenceMonitor(self, MODEL, input_topic='imu', **monitor_kwargs)
        self.on_imu = self.monitor.callback(self._on_imu)
        self.commands: List[np.ndarray] = []

    def _on_imu(self, msg: Any, info: Any = None) -> None:
        with self.monitor.stage('preprocess'):
            x = np.asarray(msg, dtype=np.float64)
        if not self.monitor.inputs(x):
            return                          # no command from a NaN sensor
        with self.monitor.stage('forward'):
            if self.raise_in_forward:
                raise ValueError('shape mismatch in the team\'s model')
            y = self.w @ x
        self.monitor.outputs(y)
        self.commands.append(y)


def base_params(**extra: Any) -> List[Parameter]:
    p = {'liquid_edge.tracing.enabled': False, 'liquid_edge.metrics_port': -1}
    p.update(extra)
    return [Parameter(k, value=v) for k, v in p.items()]


def anomalies_only(endpoint: str) -> List[Parameter]:
    """Tracing to `endpoint`, keeping only the failed callbacks: head ratio 0, no start-up
    traces, nothing slow or late (a loaded machine cannot make a normal callback an anomaly)."""
    return base_params(**{
        'liquid_edge.tracing.enabled': True, 'liquid_edge.tracing.endpoint': endpoint,
        'liquid_edge.tracing.sampling_ratio': 0.0, 'liquid_edge.tracing.startup_traces': 0,
        'liquid_edge.tracing.slow_threshold': 10.0, 'liquid_edge.control_period': 10.0})


def status(node: TeamNode, name: str) -> DiagnosticStatusWrapper:
    return node.monitor._status(name, DiagnosticStatusWrapper())


def scraped(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def close(node: TeamNode) -> None:
    node.monitor.close()
    node.destroy_node()


def test_parameters_live_under_one_prefix_with_one_line_errors(ros):
    node = TeamNode('team_params', base_params(**{'liquid_edge.latency_budget': 0.02,
                                                  'liquid_edge.robot': 'r7'}))
    try:
        assert node.get_parameter('liquid_edge.latency_budget').value == 0.02
        assert node.monitor.config.latency_budget == 0.02 and node.monitor.config.robot == 'r7'
        assert not node.has_parameter('latency_budget')       # nothing outside the prefix
    finally:
        close(node)
    for bad, fragment in ((('liquid_edge.latency_budget', -1.0), "'liquid_edge.latency_budget': "
                           'must be > 0'),
                          (('liquid_edge.tracng.enabled', False), "'liquid_edge.tracng.enabled': "
                           'unknown parameter'),
                          (('liquid_edge.tracing.protocol', 'udp'),
                           "'liquid_edge.tracing.protocol': must be grpc or http/protobuf")):
        n = Node('team_bad', parameter_overrides=base_params(**{bad[0]: bad[1]}))
        try:
            with pytest.raises(ConfigError) as e:
                InferenceMonitor(n, MODEL)
        finally:
            n.destroy_node()
        assert fragment in str(e.value) and '\n' not in str(e.value), str(e.value)


def test_another_prefix_and_the_endpoint_of_its_own(ros):
    port = free_port()
    node = Node('team_prefix', parameter_overrides=[
        Parameter('monitoring.metrics_port', value=port),
        Parameter('monitoring.tracing.enabled', value=False)])
    try:
        mon = InferenceMonitor(node, MODEL, prefix='monitoring.')
        run = mon.callback(lambda msg: mon.inputs(msg))
        run([0.0, 0.1, 9.8])
        mon.update()
        assert mon.metrics_port == port
        text = scrape(port)
        assert sample_value(text, 'liquid_edge_inferences_total', node='/team_prefix') == 1
        mon.close()
    finally:
        node.destroy_node()


def test_metrics_go_into_the_users_registry_and_never_the_global_one(ros):
    before = {n for n in REGISTRY._names_to_collectors if n.startswith('liquid_edge')}
    registry = CollectorRegistry()
    node = TeamNode('team_registry', base_params(**{'liquid_edge.metrics_port': 9111}),
                    registry=registry)
    try:
        for _ in range(3):
            node.on_imu([0.1, 0.0, 9.8])
        node.monitor.update()
        text = scraped(registry)
        assert sample_value(text, 'liquid_edge_inferences_total', node='/team_registry',
                            robot=node.monitor.config.robot) == 3
        assert node.monitor.metrics_port is None                # no endpoint of ours
        assert {n for n in REGISTRY._names_to_collectors if n.startswith('liquid_edge')} == before
    finally:
        close(node)
    assert 'liquid_edge_inferences' not in scraped(registry)    # close() unregisters


def test_the_metric_names_and_labels_the_shipped_alerts_use(ros):
    registry = CollectorRegistry()
    node = TeamNode('team_names', base_params(**{'liquid_edge.control_period': 0.5}),
                    registry=registry)
    try:
        for i in range(20):
            node.on_imu([0.1 * i, 0.0, 9.8])
        node.monitor.update()
        text = scraped(registry)
        lab = {'node': '/team_names'}
        assert sample_value(text, 'liquid_edge_inference_latency_seconds_count',
                            stage='callback', **lab) == 20
        for stage in ('preprocess', 'forward'):
            assert sample_value(text, 'liquid_edge_inference_latency_seconds_count',
                                stage=stage, **lab) == 20
        assert sample_value(text, 'liquid_edge_inference_deadline_misses_total', **lab) == 0
        assert sample_value(text, 'liquid_edge_inference_input_drift', **lab) > 0
        info = [k for k in samples(text) if k[0] == 'liquid_edge_model_info']
        assert len(info) == 1
        assert {('model', 'team_cfc'), ('version', '1.4.2'), ('framework', 'numpy'),
                ('cell', 'cfc'), ('units', '8'), ('node', '/team_names')} <= info[0][1]
    finally:
        close(node)


def test_an_exception_in_forward_is_counted_traced_and_re_raised_unchanged(ros):
    registry = CollectorRegistry()
    with OtlpReceiver('grpc') as rx:
        node = TeamNode('team_raise', anomalies_only(rx.endpoint),
            registry=registry)
        try:
            for _ in range(5):
                node.on_imu([0.1, 0.0, 9.8])
            node.raise_in_forward = True
            with pytest.raises(ValueError) as e:
                node.on_imu([0.1, 0.0, 9.8])
            assert str(e.value) == "shape mismatch in the team's model"
            assert e.value.__traceback__ is not None
            node.raise_in_forward = False
            node.on_imu([0.1, 0.0, 9.8])                  # the node goes on as before
            assert len(node.commands) == 6
            assert sample_value(scraped(registry), 'liquid_edge_inference_errors_total',
                                reason='exception') == 1
            st = status(node, 'outputs')
            assert st.level == b'\x02' and 'ValueError: shape mismatch' in st.message, st.message
            assert node.monitor.tracing.force_flush(10.0)
            roots = [s for s in rx.spans() if s.name == 'team_raise.callback']
            assert len(roots) == 1                        # only the failed one (head ratio 0)
            root = roots[0]
            assert root.attributes['liquid_edge.keep_reason'] == 'error'
            assert root.attributes['lnn.error'] == 'exception' and root.status_code == 2
            assert root.attributes['model.name'] == 'team_cfc'
            assert root.attributes['ros.topic'] == '/imu'
            kids = sorted(s.name for s in rx.spans() if s.parent_span_id == root.span_id)
            assert kids == ['forward', 'preprocess']      # forward ends where it raised
        finally:
            close(node)


@pytest.mark.parametrize('form', ['callback', 'decorator'])
def test_a_callback_failing_because_the_context_shut_down_is_a_stop_not_an_error(ros, form):
    """SIGTERM under rclpy's handlers shuts the context down inside a running callback, whose
    publish then raises: not counted, not re-raised (the spin then ends as a stop). The same
    through `monitor.callback(fn)` and `@monitor_inference`."""
    registry = CollectorRegistry()
    context = rclpy.Context()
    context.init()
    node = TeamNode(f'team_stopping_{form}', base_params(), context=context, registry=registry)
    if form == 'decorator':
        node.on_imu = types.MethodType(monitor_inference('monitor')(TeamNode._on_imu), node)
    try:
        node.on_imu([0.1, 0.0, 9.8])
        node.raise_in_forward = True
        with pytest.raises(ValueError):                   # context up: the user's error
            node.on_imu([0.1, 0.0, 9.8])
        context.shutdown()
        assert node.on_imu([0.1, 0.0, 9.8]) is None       # context down: a stop
        assert sample_value(scraped(registry), 'liquid_edge_inference_errors_total',
                            reason='exception') == 1
    finally:
        node.monitor.close()
        node.destroy_node()
        context.try_shutdown()


def test_non_finite_inputs_and_outputs_are_counted_and_traced_as_errors(ros):
    registry = CollectorRegistry()
    with OtlpReceiver('grpc') as rx:
        node = TeamNode('team_nan', anomalies_only(rx.endpoint),
            registry=registry)
        try:
            node.on_imu([0.1, 0.0, 9.8])
            assert node.monitor.inputs([np.nan, 0.0, 9.8]) is False   # outside a callback too
            node.on_imu([np.nan, 0.0, 9.8])
            node.w[0, 0] = np.inf
            node.on_imu([0.1, 0.0, 9.8])
            text = scraped(registry)
            assert sample_value(text, 'liquid_edge_inference_errors_total',
                                reason='non_finite_input') == 2
            assert sample_value(text, 'liquid_edge_inference_errors_total',
                                reason='non_finite_output') == 1
            assert status(node, 'inputs').level == b'\x02'
            assert status(node, 'outputs').level == b'\x02'
            assert node.monitor.tracing.force_flush(10.0)
            errors = sorted(s.attributes['lnn.error'] for s in rx.spans()
                            if s.name == 'team_nan.callback')
            assert errors == ['non_finite_input', 'non_finite_output']
        finally:
            close(node)


def test_values_that_are_not_numbers_are_a_reported_error_never_raised_at_the_user(ros, caplog):
    registry = CollectorRegistry()
    node = TeamNode('team_unreadable', base_params(), registry=registry)
    mon = node.monitor
    try:
        seen = []

        @mon.callback
        def on_message(values: Any) -> None:
            seen.append((mon.inputs(values), mon.outputs(values)))

        with caplog.at_level(logging.ERROR, logger='liquid_edge_ros_monitor'):
            on_message(['a', 1.0])           # text that is not a number: numpy cannot read it
            on_message([1.0, [2.0, 3.0]])    # ragged
            on_message([0.5, 1.5])           # and the next good one is read as before
        assert seen == [(False, False), (False, False), (True, True)]
        text = scraped(registry)
        for reason, n in (('bad_input', 2), ('bad_output', 2), ('exception', 0)):
            assert sample_value(text, 'liquid_edge_inference_errors_total', reason=reason) == n
        # The statuses say what came, within the 60 characters of docs/DIAGNOSTICS.md; the log
        # line (once per reason and interval) says why it could not be read.
        for name, call in (('inputs', 'inputs'), ('outputs', 'outputs')):
            st = status(node, name)
            assert st.level == b'\x02'
            assert st.message.endswith(f'{call}() got list') and len(st.message) <= 60, st.message
        logged = [r.getMessage() for r in caplog.records]
        assert any("inputs() got list: could not convert string to float: 'a'" in m
                   for m in logged), logged
    finally:
        close(node)


def test_a_stale_input_runs_the_users_hook_once_per_outage(ros):
    node = TeamNode('team_stale', base_params(**{'liquid_edge.input_timeout': 0.2}))
    calls: List[Any] = []
    node.monitor.on_input_stale(lambda age: calls.append(('stale', age)),
                                action='stopping the robot')
    node.monitor.on_input_back(lambda: calls.append(('back',)))
    import rclpy
    try:
        node.on_imu([0.1, 0.0, 9.8])

        def noticed():                     # the monitor's own timer, run by spinning the node
            rclpy.spin_once(node, timeout_sec=0.05)
            return calls
        wait_for(noticed, 5, 'the stale hook')
        assert calls[0][0] == 'stale' and calls[0][1] > 0.2
        st = status(node, 'inputs')
        assert st.level == b'\x02' and st.message.startswith('input stale for ')
        assert st.message.endswith('stopping the robot') and '/imu' in st.message
        t0 = time.monotonic()
        wait_for(lambda: (rclpy.spin_once(node, timeout_sec=0.05),
                          time.monotonic() > t0 + 0.3)[1], 3, 'a while longer stale')
        assert len(calls) == 1                            # once per outage
        node.on_imu([np.nan, 0.0, 9.8])                  # non-finite input is no sign of life
        assert calls == calls[:1]
        node.on_imu([0.1, 0.0, 9.8])
        assert calls[1:] == [('back',)]
        assert not status(node, 'inputs').message.startswith('input stale')
        assert node.monitor.metrics.errors['input_stale'] == 1
    finally:
        close(node)


def test_the_users_updater_gets_the_four_statuses(ros):
    node = Node('team_updater', parameter_overrides=base_params())
    updater = Updater(node)
    updater.setHardwareID('team-hw')
    try:
        mon = InferenceMonitor(node, MODEL, updater=updater)
        names = [t.name for t in updater.tasks]
        assert names[-4:] == ['model', 'latency', 'inputs', 'outputs']
        assert updater.hwid == 'team-hw'                 # left as the user set it
        mon.close()
    finally:
        node.destroy_node()


def test_a_method_decorator_finds_the_monitor_on_self(ros):
    class Decorated(Node):
        def __init__(self) -> None:
            super().__init__('team_decorated', parameter_overrides=base_params())
            self.inference_monitor = InferenceMonitor(self, MODEL)

        @monitor_inference()
        def on_imu(self, msg: Any) -> float:
            with self.inference_monitor.stage('forward'):
                return float(sum(msg))

    node = Decorated()
    try:
        assert node.on_imu([1.0, 2.0]) == 3.0
        assert node.inference_monitor.metrics.inferences == 1
        node.inference_monitor.recorder.drain()
        assert list(node.inference_monitor.recorder.stage_rings) == ['forward']
    finally:
        node.inference_monitor.close()
        node.destroy_node()


def test_json_log_lines_carry_the_callbacks_trace_id(ros):
    with OtlpReceiver('grpc') as rx:
        node = TeamNode('team_json', base_params(**{
            'liquid_edge.tracing.enabled': True, 'liquid_edge.tracing.endpoint': rx.endpoint,
            'liquid_edge.tracing.sampling_ratio': 1.0, 'liquid_edge.json_logging': True}))
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(node.monitor._json_handler.formatter)
        node.monitor.logger.addHandler(handler)
        try:
            log = node.monitor.logger
            wrapped = node.monitor.callback(lambda msg: log.info('stepping', extra={'x': msg}))
            for i in range(3):
                wrapped(i)
            assert node.monitor.tracing.force_flush(10.0)
            lines = [json.loads(x) for x in stream.getvalue().splitlines()]
            assert [x['x'] for x in lines] == [0, 1, 2]
            traced = {s.trace_id for s in rx.spans() if s.name == 'team_json.callback'}
            assert {x['trace_id'] for x in lines} == traced and len(traced) == 3
        finally:
            node.monitor.logger.removeHandler(handler)
            close(node)


@pytest.mark.parametrize('truth_topic, named', [('truth', '/truth'), ('', 'ground truth')])
def test_the_outputs_status_names_what_accuracy_is_measured_against(ros, truth_topic, named):
    """Outputs scored against `ground_truth()`: the outputs status says against what, the topic
    the user named (resolved against the node) or plain 'ground truth'."""
    node = TeamNode('team_truth', base_params(**{'liquid_edge.accuracy.window': 4}),
                    truth_topic=truth_topic)
    try:
        node.monitor.ground_truth([-0.1, 0.15])       # what w @ [0, 0.5, 0] gives
        for _ in range(4):
            node.on_imu([0.0, 0.5, 0.0])
        stat = status(node, 'outputs')
        assert stat.message == f'accuracy 100% vs {named}, last 4 outputs', stat.message
        values = {kv.key: kv.value for kv in stat.values}
        assert values.get('ground truth') == (named if truth_topic else None), values
    finally:
        close(node)


def test_skip_leaves_a_callback_uncounted(ros):
    node = TeamNode('team_skip', base_params())
    try:
        skip = node.monitor.callback(lambda: node.monitor.skip())
        skip()
        node.on_imu([0.1, 0.0, 9.8])
        assert node.monitor.metrics.inferences == 1
        node.monitor.recorder.drain()
        assert node.monitor.recorder.callback.count == 1
    finally:
        close(node)


def test_no_endpoint_means_no_exporter_and_the_status_says_so(ros, monkeypatch):
    for name in ('OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'):
        monkeypatch.delenv(name, raising=False)
    node = TeamNode('team_noendpoint', base_params(**{'liquid_edge.tracing.enabled': True,
                                                      'liquid_edge.tracing.sampling_ratio': 1.0}))
    try:
        for _ in range(5):
            node.on_imu([0.1, 0.0, 9.8])
        assert not node.monitor.tracing.exporting
        assert sum(node.monitor.sampler.kept.values()) == 5          # counted
        st = status(node, 'model')
        values = {kv.key: kv.value for kv in st.values}
        assert st.level == b'\x00'
        assert values['tracing'] == 'no endpoint: traces counted, not exported'
    finally:
        close(node)


def test_an_unreachable_collector_is_one_log_line_then_the_status(ros, monkeypatch, caplog):
    """Exports to a closed port fail: one log line for the outage, the model status WARN with the
    count and the last error; the collector comes up: one line, the status OK again."""
    from liquid_edge_ros_monitor.instrument import export_logs
    export_logs.recovered()
    monkeypatch.setenv('OTEL_EXPORTER_OTLP_TRACES_TIMEOUT', '500')     # ms: fail fast
    port = free_port()
    node = TeamNode('team_deadcollector', base_params(**{
        'liquid_edge.tracing.enabled': True, 'liquid_edge.tracing.protocol': 'http/protobuf',
        'liquid_edge.tracing.endpoint': f'http://127.0.0.1:{port}',
        'liquid_edge.tracing.sampling_ratio': 1.0}))
    try:
        with caplog.at_level(logging.INFO):
            def failing():
                node.on_imu([0.1, 0.0, 9.8])
                return node.monitor.tracing.failed_spans >= 30
            wait_for(failing, 30, '30 spans lost', interval=0.1)
            st = status(node, 'model')
            values = {kv.key: kv.value for kv in st.values}
            assert st.level == b'\x01' and st.message.startswith('trace export failing: '), \
                st.message
            assert values['last export error'] and values['last export error'] != 'unknown'
            exporter_lines = [r for r in caplog.records if r.name.startswith('opentelemetry')
                              and r.levelno >= logging.WARNING]
            assert len(exporter_lines) == 1, [r.getMessage() for r in exporter_lines]
            with OtlpReceiver('http/protobuf', port=port) as rx:
                def back():
                    node.on_imu([0.1, 0.0, 9.8])
                    return not node.monitor.tracing.export_failing and rx.spans()
                wait_for(back, 30, 'exports working again', interval=0.1)
                assert status(node, 'model').level == b'\x00'
            assert [r.getMessage() for r in caplog.records
                    if 'trace export works again' in r.getMessage()]
    finally:
        close(node)
