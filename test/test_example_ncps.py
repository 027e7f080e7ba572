"""The shipped example a team copies (examples/ncps_torch_node.py): an rclpy node running an ncps
torch CfC, instrumented by the lines it marks `# [monitor]`, end to end over Fast DDS with the real
OTLP receiver and a real Prometheus.

torch and ncps come from requirements-example.txt (the CPU wheels), which the test set-up installs
(tools/bootstrap.sh --test-tools): this test runs in CI, it does not skip there.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import List

import pytest
import yaml
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Imu

from conftest import REPO, free_port, own_lines, wait_for
from otlp_receiver import OtlpReceiver
from ros_helpers import DiagnosticsListener, sample_value, scrape
from test_prometheus_e2e import PrometheusServer

EXAMPLE = REPO / 'examples' / 'ncps_torch_node.py'
MARK = '# [monitor]'
HEAD_RATIO = 0.1


def load_example():
    spec = importlib.util.spec_from_file_location('ncps_torch_node', EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_instrumentation_is_at_most_ten_lines_none_in_the_model_code():
    source = EXAMPLE.read_text()
    marked = [ln for ln in source.splitlines() if ln.rstrip().endswith(MARK)]
    assert 1 <= len(marked) <= 10, marked
    # The model code (building and running the CfC) carries no mark.
    model_lines = [ln for ln in source.splitlines() if re.search(r'CfC\(|self\.rnn\(|load_state', ln)]
    assert model_lines and not [ln for ln in model_lines if MARK in ln and 'stage' not in ln]
    # Without the marked lines (and the `with` lines turned back into the plain ones) it is plain
    # rclpy: it still parses, and imports nothing of ours.
    plain = '\n'.join(ln for ln in source.splitlines() if MARK not in ln)
    assert 'liquid_edge_ros_monitor' not in plain.split('"""', 2)[2]
    ast.parse(source)


class Sensor:
    """A 100 Hz IMU driven by a timer: normal readings, a NaN every `nan_every`-th, and, while
    `faults` is set, every tenth reading marked (linear_acceleration.y = 99) for the test to make
    the model raise on."""

    def __init__(self, ns: str, nan_every: int = 25) -> None:
        self.node = Node('test_sensor', namespace=ns)
        self.pub = self.node.create_publisher(Imu, 'imu/data', 100)
        self.sent = {'normal': 0, 'nan': 0, 'raise': 0}
        self.faults = False
        self.running = False
        self._n = 0
        self._nan_every = nan_every
        self.node.create_timer(0.01, self._tick)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _tick(self) -> None:
        if not self.running:
            return
        self._n += 1
        msg = Imu()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.angular_velocity.z, msg.linear_acceleration.x = 0.2, 0.1
        if self.faults and self._n % 10 == 0:
            msg.linear_acceleration.y = 99.0
            self.sent['raise'] += 1
        elif self._n % self._nan_every == 0:
            msg.angular_velocity.z = float('nan')
            self.sent['nan'] += 1
        else:
            self.sent['normal'] += 1
        self.pub.publish(msg)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2)
        self.thread.join(5)
        self.node.destroy_node()


@pytest.mark.skipif(shutil.which('prometheus') is None, reason='prometheus not installed')
def test_the_example_node_is_fully_instrumented(ros, tmp_path, capfd):
    example = load_example()
    ns = '/team'
    port = free_port()
    listener = DiagnosticsListener('test_example_listener')
    with OtlpReceiver('grpc') as rx:
        node = example.CfcController(namespace=ns, parameter_overrides=[
            Parameter('liquid_edge.metrics_port', value=port),
            Parameter('liquid_edge.robot', value='team_robot'),
            Parameter('liquid_edge.json_logging', value=True),
            Parameter('liquid_edge.tracing.endpoint', value=rx.endpoint),
            Parameter('liquid_edge.tracing.sampling_ratio', value=HEAD_RATIO),
            Parameter('liquid_edge.tracing.startup_traces', value=0),
            # nothing slow or late on a loaded machine: normal callbacks are kept at the head
            # ratio only
            Parameter('liquid_edge.tracing.slow_threshold', value=5.0),
            Parameter('liquid_edge.control_period', value=5.0),
            Parameter('diagnostic_updater.period', value=0.25)])
        forward = node.rnn.forward

        def faulty(x, *args, **kwargs):   # fault injection: the team's model raises
            if float(x[0, -1, 2]) == 99.0:
                raise RuntimeError('injected: CUDA error: device-side assert triggered')
            return forward(x, *args, **kwargs)
        node.rnn.forward = faulty
        raised: List[BaseException] = []
        stop = threading.Event()

        def spin():                      # as rclpy.spin, but a raising callback is noted
            executor = SingleThreadedExecutor()
            executor.add_node(node)
            while not stop.is_set():
                try:
                    executor.spin_once(timeout_sec=0.05)
                except RuntimeError as exc:
                    raised.append(exc)
            executor.shutdown(timeout_sec=2)
        spinner = threading.Thread(target=spin, daemon=True)
        spinner.start()
        sensor = Sensor(ns)
        config = tmp_path / 'prometheus.yml'
        config.write_text(yaml.safe_dump({
            'global': {'scrape_interval': '1s', 'scrape_timeout': '1s'},
            'scrape_configs': [{'job_name': 'team_inference',
                                'static_configs': [{'targets': [f'127.0.0.1:{port}']}]}]}))
        server = PrometheusServer(config, tmp_path, '--enable-feature=exemplar-storage')
        try:
            wait_for(lambda: node.count_subscribers(f'{ns}/imu/data') and
                     sensor.pub.get_subscription_count(), 20, 'the example to subscribe')
            sensor.running = True
            t0 = time.monotonic()
            wait_for(lambda: time.monotonic() > t0 + 2.0, 5, '2 s of input')
            sensor.faults = True
            wait_for(lambda: len(raised) >= 2, 10, 'two exceptions out of forward')
            sensor.faults = False
            wait_for(lambda: sensor.sent['normal'] >= 400, 20, '400 normal inputs')
            sensor.running = False
            assert all(str(e).startswith('injected: CUDA error') for e in raised)  # unchanged
            m = node.monitor.metrics
            settled = [-1]

            def processed():             # best-effort input: what arrived, once it stops
                n, settled[0] = settled[0], m.inferences
                return n == m.inferences and n >= 0.8 * sum(sensor.sent.values())
            wait_for(processed, 10, 'the inputs processed', interval=0.3)
            assert node.monitor.tracing.force_flush(10.0)

            # Traces: exactly the NaN inputs and the exceptions, with their reasons; normal
            # callbacks at the head ratio.
            roots = [s for s in rx.spans() if s.name == 'ncps_controller.callback']
            errors = [r for r in roots if r.attributes['liquid_edge.keep_reason'] == 'error']
            kinds = sorted(r.attributes['lnn.error'] for r in errors)
            assert kinds.count('exception') == len(raised) == m.errors['exception']
            assert kinds.count('non_finite_input') == m.errors['non_finite_input']
            assert m.errors['non_finite_input'] >= 0.8 * sensor.sent['nan']
            assert all(r.status_code == 2 for r in errors)
            head = [r for r in roots if r.attributes['liquid_edge.keep_reason'] == 'head']
            n = node.monitor.metrics.inferences - len(errors)
            expected = HEAD_RATIO * n            # binomial: mean 10 %, 5 standard deviations
            assert abs(len(head) - expected) <= 5 * (expected * (1 - HEAD_RATIO)) ** 0.5, \
                (len(head), n)
            assert {r.attributes['liquid_edge.keep_reason'] for r in roots} == {'error', 'head'}
            sample = next(r for r in roots if r.attributes['liquid_edge.keep_reason'] == 'head')
            kids = sorted(s.name for s in rx.spans() if s.parent_span_id == sample.span_id)
            assert kids == ['forward', 'preprocess']
            assert sample.attributes['ros.topic'] == f'{ns}/imu/data'
            assert sample.attributes['ros.header.stamp_ns'] > 0
            assert sample.resource['ros.node.name'] == 'ncps_controller'

            # Metrics on its own endpoint, the names the shipped alerts use; exemplars link the
            # latency histogram to traces the receiver got.
            text = scrape(port)
            assert sample_value(text, 'liquid_edge_inference_errors_total', reason='exception',
                                node=f'{ns}/ncps_controller', robot='team_robot') == len(raised)
            assert sample_value(text, 'liquid_edge_model_info', framework='torch',
                                model='ncps_cfc_untrained') == 1
            wait_for(server.ready, 30, 'prometheus to be ready')
            received = {r.trace_id for r in roots}

            def linked():
                now = time.time()
                data = server.api('query_exemplars',
                                  query='liquid_edge_inference_latency_seconds_bucket',
                                  start=str(now - 300), end=str(now + 60))
                ids = {e['labels']['trace_id'] for s in data for e in s['exemplars']}
                return ids if ids and ids <= received else None
            assert wait_for(linked, 40, 'exemplars that are received trace ids')

            # Its /diagnostics statuses carry its own node name and hardware id.
            wait_for(lambda: all(listener.status(f'ncps_controller: {n}') is not None
                                 for n in ('model', 'latency', 'inputs', 'outputs')), 10,
                     'the four statuses')
            st = listener.status('ncps_controller: model')
            assert st.hardware_id == 'team_robot' and 'ncps_cfc_untrained' in st.message

            # Its JSON log lines carry the trace ids of the callbacks they were written in.
            logged = [json.loads(x) for x in own_lines(capfd.readouterr().err)
                      if x.startswith('{')]
            lines = [x for x in logged if x.get('reason') in ('exception', 'non_finite_input')]
            assert {x['reason'] for x in lines} == {'exception', 'non_finite_input'}
            error_ids = {r.trace_id for r in errors}
            assert all(x['trace_id'] in error_ids for x in lines), lines
        finally:
            stop.set()
            spinner.join(5)
            server.stop()
            sensor.close()
            listener.close()
            node.monitor.close()
            node.destroy_node()


@pytest.mark.parametrize('stop', [signal.SIGINT, signal.SIGTERM], ids=['SIGINT', 'SIGTERM'])
def test_the_example_runs_as_a_user_starts_it(ros_process, tmp_path, stop):
    """`python3 examples/ncps_torch_node.py` beside sim_robot: commands and metrics flow, and
    Ctrl-C (or the SIGTERM `ros2 launch` escalates to) stops it cleanly."""
    port = free_port()
    ns = '/team_main'
    log = open(tmp_path / 'example.log', 'wb')
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE), '--ros-args', '-r', f'__ns:={ns}',
         '-p', f'liquid_edge.metrics_port:={port}', '-p', 'liquid_edge.tracing.enabled:=false'],
        stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        ros_process('liquid_edge_ros_monitor.sim_robot', '--ros-args', '-r', f'__ns:={ns}',
                    '-p', 'camera.enabled:=false', '-p', 'scan.enabled:=false')

        def inferences():
            try:
                return (sample_value(scrape(port), 'liquid_edge_inferences_total') or 0) > 50
            except OSError:
                return False
        wait_for(inferences, 60, '50 inferences scraped from the example')
    finally:
        proc.send_signal(stop)
        proc.wait(20)
        log.close()
    out = (tmp_path / 'example.log').read_text()
    assert proc.returncode == 0, out
    assert 'Traceback' not in out, out
