"""liquid_inference end to end: the node in its own process, fed by sim_robot in another, traced to a
real OTLP receiver in this one, over Fast DDS.

Checked: span names, parent/child links and attributes (grpc and http/protobuf); with a dead
collector the command still follows the input rate; NaN input and overflowing outputs never reach
the command topic; a corrupt weights file stops the node with one line naming the tensor.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from typing import List

import numpy as np
import pytest
from geometry_msgs.msg import Twist
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Imu

from conftest import REPO, free_port, own_lines, wait_for
from otlp_receiver import OtlpReceiver
from ros_helpers import DiagnosticsListener, sample_value, scrape

GOLDEN = REPO / 'test' / 'data' / 'lnn' / 'cfc_tanh_nobackbone.npz'   # 5 inputs -> 2 outputs
FEATURES = ("features:=['angular_velocity.z','linear_acceleration.x','linear_acceleration.y',"
            "'linear_acceleration.z','angular_velocity.x']")
SIM = ['-p', 'imu.rate:=200.0', '-p', 'camera.enabled:=false', '-p', 'scan.enabled:=false',
       '-p', 'chatter.enabled:=false', '-p', 'odom.enabled:=false']


class Counter:
    """Counts Imu inputs and Twist commands in one namespace, and keeps every command."""

    def __init__(self, ns: str) -> None:
        self.node = Node('test_counter', namespace=ns)
        self.imu = 0
        self.commands: List[tuple] = []
        self.node.create_subscription(Imu, 'imu/data', self._on_imu,
                                      QoSProfile(depth=100,
                                                 reliability=ReliabilityPolicy.BEST_EFFORT))
        self.node.create_subscription(Twist, 'cmd_vel', self._on_cmd, 100)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_imu(self, _msg: Imu) -> None:
        self.imu += 1

    def _on_cmd(self, msg: Twist) -> None:
        self.commands.append((msg.linear.x, msg.angular.z))

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2)
        self.thread.join(5)
        self.node.destroy_node()


def start_inference(ros_process, ns: str, *params: str):
    return ros_process('liquid_edge_ros_monitor.inference.node', '--ros-args',
                       '-r', f'__ns:={ns}', '-p', f'model_path:={GOLDEN}', '-p', FEATURES,
                       '-p', 'update_period:=0.25', '-p', 'diagnostic_updater.period:=0.25',
                       *params)


@pytest.mark.parametrize('protocol', ['grpc', 'http/protobuf'])
def test_spans_reach_a_real_otlp_receiver(ros, ros_process, protocol):
    ns = '/li_' + protocol.split('/')[0]
    with OtlpReceiver(protocol) as rx:
        node = start_inference(ros_process, ns, '-p', f'tracing.endpoint:={rx.endpoint}',
                               '-p', f'tracing.protocol:={protocol}',
                               '-p', 'tracing.sampling_ratio:=1.0', '-p', 'json_logging:=true',
                               '-p', 'metrics_port:=-1')
        ros_process('liquid_edge_ros_monitor.sim_robot', '--ros-args', '-r', f'__ns:={ns}', *SIM)

        def complete_traces(spans):
            roots = {s.span_id: s for s in spans if s.name == 'liquid_inference.callback'}
            children = {}
            for s in spans:
                if s.parent_span_id in roots:
                    children.setdefault(s.parent_span_id, []).append(s)
            done = [(roots[k], v) for k, v in children.items() if len(v) == 3]
            return done if len(done) >= 20 else None

        traces = rx.wait_for(complete_traces, timeout=40)
        done = complete_traces(traces)
        root, kids = done[-1]
        assert root.parent_span_id == ''
        assert sorted(k.name for k in kids) == ['forward', 'preprocess', 'publish']
        assert all(k.trace_id == root.trace_id for k in kids)
        a = root.attributes
        assert a['ros.topic'] == f'{ns}/imu/data'
        assert a['ros.header.frame_id'] == 'imu_link'
        assert a['ros.header.stamp_ns'] > 1_600_000_000 * 10**9
        assert a['dds.publication_sequence_number'] > 0
        assert (a['lnn.cell'], a['lnn.units'], a['lnn.inputs']) == ('cfc', 6, 5)
        seqs = [r.attributes['dds.publication_sequence_number'] for r, _ in done]
        assert len(set(seqs)) == len(seqs)                    # one span per input message
        res = root.resource
        assert res['service.name'] == 'liquid_edge_ros_monitor' and res['host.name']
        assert res['ros.node.name'] == 'liquid_inference' and res['ros.node.namespace'] == ns
        assert res['ros.domain_id'] == os.environ['ROS_DOMAIN_ID']
        assert node.stop() == 0
        # json_logging: our logger's lines are JSON objects with the standard fields.
        lines = [json.loads(x) for x in own_lines(node.output()) if x.startswith('{')]
        ready = [x for x in lines if x.get('message') == 'ready']
        assert ready and ready[0]['level'] == 'INFO' and ready[0]['logger'].endswith(
            'liquid_inference') and 'CfC' in ready[0]['model']


def test_a_dead_collector_costs_the_control_loop_nothing(ros, ros_process):
    ns = '/li_dead'
    closed = free_port()                 # nothing listens there
    port = free_port()
    counter = Counter(ns)
    try:
        # Reliable input with a deep queue: a command per input unless the node falls behind for good
        # (a best-effort queue of 10 would also drop on a busy 2-core CI machine, traced or not).
        start_inference(ros_process, ns, '-p', f'tracing.endpoint:=http://127.0.0.1:{closed}',
                        '-p', 'tracing.sampling_ratio:=1.0', '-p', f'metrics_port:={port}',
                        '-p', 'input_reliability:=reliable', '-p', 'qos_depth:=500')
        ros_process('liquid_edge_ros_monitor.sim_robot', '--ros-args', '-r', f'__ns:={ns}', *SIM,
                    '-p', 'imu.reliability:=reliable')
        wait_for(lambda: len(counter.commands) > 200, 40, 'commands flowing')
        imu0, cmd0 = counter.imu, len(counter.commands)
        deadline = time.monotonic() + 4.0
        wait_for(lambda: time.monotonic() > deadline, 6, 'a 4 s measurement')
        imu, cmd = counter.imu - imu0, len(counter.commands) - cmd0
        assert imu > 600 and cmd >= 0.95 * imu, (imu, cmd)
        text = scrape(port)
        assert sample_value(text, 'liquid_edge_inferences_total') > 600
        assert sample_value(text, 'liquid_edge_inference_latency_seconds_count',
                            stage='callback') > 0
        assert sample_value(text, 'liquid_edge_jit_compilations_total') >= 1
    finally:
        counter.close()


def test_nan_input_never_reaches_the_command(ros, ros_process):
    ns = '/li_nan'
    port = free_port()
    counter = Counter(ns)
    listener = DiagnosticsListener('test_nan_listener')
    talker = Node('nan_talker', namespace=ns)
    pub = talker.create_publisher(Imu, 'imu/data', 10)
    try:
        start_inference(ros_process, ns, '-p', 'tracing.enabled:=false',
                        '-p', f'metrics_port:={port}', '-p', 'input_reliability:=reliable')
        wait_for(lambda: pub.get_subscription_count() > 0 and counter.node.count_publishers(
            f'{ns}/cmd_vel') > 0, 40, 'the inference node to subscribe')
        msg = Imu()
        msg.header.stamp.sec = 99
        msg.angular_velocity.z, msg.linear_acceleration.y = 0.2, 0.06

        def primed():      # matching can complete on one side first: publish until a reply
            pub.publish(msg)
            return counter.commands
        wait_for(primed, 20, 'a first command', interval=0.1)
        n0 = len(counter.commands)
        for i in range(40):
            msg.header.stamp.sec, msg.header.stamp.nanosec = 100, i * 5_000_000
            msg.angular_velocity.z = float('nan') if i % 4 == 3 else 0.2
            msg.linear_acceleration.y = float('inf') if i == 10 else 0.06
            pub.publish(msg)
            wait_for(lambda: len(counter.commands) > n0 + i, 10, f'command {i}')
        assert all(math.isfinite(v) for c in counter.commands for v in c)
        wait_for(lambda: sample_value(scrape(port), 'liquid_edge_inference_errors_total',
                                      reason='non_finite_input') == 11, 10, '11 bad inputs counted')
        wait_for(lambda: listener.level('liquid_inference: inputs') == 2, 10, 'inputs ERROR')
        assert 'non-finite input' in listener.message('liquid_inference: inputs')
    finally:
        talker.destroy_node()
        listener.close()
        counter.close()


def test_overflowing_model_publishes_safe_commands_and_reports_error(ros, ros_process, tmp_path):
    from liquid_edge_ros_monitor.lnn import load_model, save_model
    m = load_model(GOLDEN)
    t = m.tensors()
    t['fc.weight'] = np.full_like(t['fc.weight'], 3e38)       # finite weights, infinite outputs
    bad = tmp_path / 'overflow.npz'
    save_model(type(m)(m.hyper, t), bad)
    ns = '/li_inf'
    counter = Counter(ns)
    listener = DiagnosticsListener('test_inf_listener')
    try:
        ros_process('liquid_edge_ros_monitor.inference.node', '--ros-args', '-r', f'__ns:={ns}',
                    '-p', f'model_path:={bad}', '-p', FEATURES, '-p', 'tracing.enabled:=false',
                    '-p', 'metrics_port:=-1', '-p', 'diagnostic_updater.period:=0.25')
        ros_process('liquid_edge_ros_monitor.sim_robot', '--ros-args', '-r', f'__ns:={ns}', *SIM)
        wait_for(lambda: len(counter.commands) > 100, 40, 'commands')
        assert set(counter.commands) == {(0.0, 0.0)}
        wait_for(lambda: listener.level('liquid_inference: outputs') == 2, 10, 'outputs ERROR')
        assert 'state reset' in listener.message('liquid_inference: outputs')
    finally:
        listener.close()
        counter.close()


def test_corrupt_weights_file_stops_with_one_line_naming_the_tensor(tmp_path):
    data = dict(np.load(GOLDEN))
    del data['rnn_cell.ff2.weight']
    np.savez(tmp_path / 'broken.npz', **data)
    shutil.copy(GOLDEN.with_suffix('.json'), tmp_path / 'broken.json')
    r = subprocess.run([sys.executable, '-m', 'liquid_edge_ros_monitor.inference.node',
                        '--ros-args', '-p', f'model_path:={tmp_path / "broken.npz"}',
                        '-p', FEATURES, '-p', 'metrics_port:=-1'],
                       capture_output=True, text=True, timeout=60, cwd=REPO)
    lines = own_lines(r.stderr)
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and 'rnn_cell.ff2.weight' in lines[0] and 'broken.npz' in lines[0], \
        r.stderr


def test_feature_count_must_match_the_model(tmp_path):
    r = subprocess.run([sys.executable, '-m', 'liquid_edge_ros_monitor.inference.node',
                        '--ros-args', '-p', f'model_path:={GOLDEN}', '-p', 'metrics_port:=-1'],
                       capture_output=True, text=True, timeout=60, cwd=REPO)
    assert r.returncode == 2
    assert own_lines(r.stderr) == [
        "liquid_inference: error: parameter 'features': lists 3 fields but the model "
        'cfc_tanh_nobackbone.npz takes 5 inputs']


@pytest.mark.parametrize('ratio', [0.0, 0.25, 1.0])
def test_sampling_ratio_decides_how_many_inputs_are_traced(ros, ratio):
    """The node's own callback, called in this process: a sampled input gives one trace of four
    spans, an unsampled one gives none."""
    from rclpy.parameter import Parameter

    from liquid_edge_ros_monitor.inference.node import LiquidInference
    n = 400
    with OtlpReceiver('grpc') as rx:
        node = LiquidInference(namespace=f'/li_ratio{int(ratio * 100)}', parameter_overrides=[
            Parameter('model_path', value=str(GOLDEN)),
            Parameter('features', value=['angular_velocity.z', 'linear_acceleration.x',
                                         'linear_acceleration.y', 'linear_acceleration.z',
                                         'angular_velocity.x']),
            Parameter('metrics_port', value=-1), Parameter('tracing.endpoint', value=rx.endpoint),
            Parameter('tracing.sampling_ratio', value=ratio),
            # head sampling alone: no start-up traces, no callback slow or late (a loaded CI
            # machine can stretch one past the 5 ms input period)
            Parameter('tracing.startup_traces', value=0),
            Parameter('tracing.slow_threshold', value=10.0),
            Parameter('control_period', value=10.0)])
        try:
            msg = Imu()
            for i in range(n):
                msg.header.stamp.sec, msg.header.stamp.nanosec = 100, i * 5_000_000
                node._on_input(msg, {'publication_sequence_number': i + 1})
            assert node.tracing.force_flush(10.0)
            roots = [s for s in rx.spans() if s.name == 'liquid_inference.callback']
            assert len(rx.spans()) == 4 * len(roots)
            if ratio == 0.0:
                assert roots == []
            elif ratio == 1.0:
                assert len(roots) == n
            else:                            # binomial(400, 0.25): mean 100, sd 8.7
                assert 55 <= len(roots) <= 145, len(roots)
            assert node.metrics.inferences == n      # every input stepped, traced or not
        finally:
            node.destroy_node()


def test_control_rate_steps_from_the_latest_input(ros, ros_process):
    """control_rate 50 Hz on a 200 Hz IMU: commands at 50 Hz, not at the input rate."""
    ns = '/li_rate'
    counter = Counter(ns)
    try:
        start_inference(ros_process, ns, '-p', 'tracing.enabled:=false', '-p', 'metrics_port:=-1',
                        '-p', 'control_rate:=50.0')
        ros_process('liquid_edge_ros_monitor.sim_robot', '--ros-args', '-r', f'__ns:={ns}', *SIM)
        wait_for(lambda: len(counter.commands) > 20, 40, 'commands flowing')
        imu0, cmd0, t0 = counter.imu, len(counter.commands), time.monotonic()
        deadline = t0 + 3.0
        wait_for(lambda: time.monotonic() > deadline, 5, 'a 3 s measurement')
        elapsed = time.monotonic() - t0
        # Commands (reliable) against the clock, not against this process's own best-effort IMU
        # count, which a loaded CI machine thins out.
        rate = (len(counter.commands) - cmd0) / elapsed
        assert rate == pytest.approx(50.0, rel=0.2), rate
        assert counter.imu - imu0 > 2 * (len(counter.commands) - cmd0)   # the input is faster
    finally:
        counter.close()
