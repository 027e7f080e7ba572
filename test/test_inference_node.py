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
from ros_helpers import DiagnosticsListener, sample_value, scrape, set_parameter

GOLDEN = REPO / 'test' / 'data' / 'lnn' / 'cfc_tanh_nobackbone.npz'   # 5 inputs -> 2 outputs
FEATURES_LIST = ['angular_velocity.z', 'linear_acceleration.x', 'linear_acceleration.y',
                 'linear_acceleration.z', 'angular_velocity.x']
FEATURES = 'features:=[' + ','.join(f"'{f}'" for f in FEATURES_LIST) + ']'
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
        # input_timeout 30 s: the test publishes by hand, and a pause of a loaded machine must
        # not turn the inputs status into "input stale" before it is read.
        start_inference(ros_process, ns, '-p', 'tracing.enabled:=false',
                        '-p', f'metrics_port:={port}', '-p', 'input_reliability:=reliable',
                        '-p', 'input_timeout:=30.0')
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
        wait_for(lambda: listener.level('liquid_inference: inputs') == 2
                 and 'non-finite input' in listener.message('liquid_inference: inputs'), 10,
                 'inputs ERROR: non-finite input')
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
        node = ros_process('liquid_edge_ros_monitor.inference.node', '--ros-args', '-r', f'__ns:={ns}',
                    '-p', f'model_path:={bad}', '-p', FEATURES, '-p', 'tracing.enabled:=false',
                    '-p', 'metrics_port:=-1', '-p', 'diagnostic_updater.period:=0.25')
        ros_process('liquid_edge_ros_monitor.sim_robot', '--ros-args', '-r', f'__ns:={ns}', *SIM)
        wait_for(lambda: len(counter.commands) > 100, 40, 'commands')
        assert set(counter.commands) == {(0.0, 0.0)}
        wait_for(lambda: listener.level('liquid_inference: outputs') == 2, 10, 'outputs ERROR')
        assert 'state reset' in listener.message('liquid_inference: outputs')
        assert node.stop() == 0
        # One ERROR line per throttle interval, not one per message (200 a second here).
        lines = [x for x in own_lines(node.output()) if 'non-finite output' in x]
        assert 1 <= len(lines) <= 2, lines
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
            assert node.monitor.tracing.force_flush(10.0)
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


def set_sim_parameter(node: Node, target: str, name: str, value) -> None:
    """Set one parameter of a running sim_robot through its parameter service."""
    from rclpy.parameter_client import AsyncParameterClient
    client = AsyncParameterClient(node, target)
    wait_for(lambda: client.wait_for_services(0.1), 20, f'{target} parameter services')
    assert set_parameter(client, name, value).successful


@pytest.mark.parametrize('control_rate', [50.0, 0.0])
def test_a_silent_sensor_stops_the_controller(ros, ros_process, control_rate):
    """The IMU pauses (sim_robot's own parameter): past input_timeout the node publishes the zero
    command (at the control rate, or once without one), never the last network output again,
    reports ERROR 'input stale for X s', counts it; when the IMU is back it steps again."""
    ns = f'/li_stale{int(control_rate)}'
    port = free_port()
    counter = Counter(ns)
    listener = DiagnosticsListener(f'test_stale_listener{int(control_rate)}')
    try:
        start_inference(ros_process, ns, '-p', 'tracing.enabled:=false', '-p', f'metrics_port:={port}',
                        '-p', f'control_rate:={control_rate}', '-p', 'input_timeout:=0.4')
        ros_process('liquid_edge_ros_monitor.sim_robot', '--ros-args', '-r', f'__ns:={ns}', *SIM)
        wait_for(lambda: len(counter.commands) > 20, 40, 'commands flowing')
        # A loaded machine may delay the IMU past 0.4 s once (a zero command): wait for the
        # controller to be stepping again rather than read the last command once.
        wait_for(lambda: counter.commands[-1] != (0.0, 0.0), 10, 'a network command')
        before_pause = len(counter.commands)
        set_sim_parameter(counter.node, f'{ns}/sim_robot', 'imu.paused', True)
        wait_for(lambda: listener.level('liquid_inference: inputs') == 2, 10, 'inputs ERROR')
        text = listener.message('liquid_inference: inputs')
        assert text.startswith('input stale for ') and f'{ns}/imu/data' in text, text
        assert float(text.split()[3]) > 0.4, text
        stale_at = len(counter.commands)
        if control_rate:
            assert 'publishing the zero command at 50 Hz' in text, text
            wait_for(lambda: len(counter.commands) > stale_at + 25, 10, '25 commands while stale')
            assert set(counter.commands[stale_at:]) == {(0.0, 0.0)}
        else:
            assert 'publishing the zero command once' in text, text
            wait_for(lambda: counter.commands[-1] == (0.0, 0.0), 5, 'the zero command')
            n = len(counter.commands)
            deadline = time.monotonic() + 1.0
            wait_for(lambda: time.monotonic() > deadline, 3, '1 s of silence')
            assert len(counter.commands) == n
            assert counter.commands[before_pause:].count((0.0, 0.0)) == 1
        # One outage here; a loaded machine may add a short one before the pause, never none.
        assert sample_value(scrape(port), 'liquid_edge_inference_errors_total',
                            reason='input_stale') >= 1
        set_sim_parameter(counter.node, f'{ns}/sim_robot', 'imu.paused', False)
        n = len(counter.commands)
        wait_for(lambda: any(c != (0.0, 0.0) for c in counter.commands[n:]), 10,
                 'non-zero commands once the IMU is back')
        wait_for(lambda: listener.level('liquid_inference: inputs') != 2, 10, 'inputs not ERROR')
    finally:
        listener.close()
        counter.close()


def status_of(node, name: str):
    """The node's `/diagnostics` status `name` as its updater would publish it now."""
    from liquid_edge_ros_monitor.core.diagnostics import DiagnosticStatusWrapper
    return node.monitor._status(name, DiagnosticStatusWrapper())


def make_node(ns: str, *params):
    from rclpy.parameter import Parameter

    from liquid_edge_ros_monitor.inference.node import LiquidInference
    return LiquidInference(namespace=ns, parameter_overrides=[
        Parameter('model_path', value=str(GOLDEN)),
        Parameter('features', value=['angular_velocity.z', 'linear_acceleration.x',
                                     'linear_acceleration.y', 'linear_acceleration.z',
                                     'angular_velocity.x']),
        Parameter('tracing.enabled', value=False), *params])


def test_an_input_stepped_again_gets_the_real_elapsed_time(ros):
    """control_rate above the input rate: the repeated input's dt is the time since the previous
    step, not the nominal period (1.0 s for this model, which has no training period)."""
    from rclpy.parameter import Parameter
    node = make_node('/li_dt', Parameter('metrics_port', value=-1),
                     Parameter('control_rate', value=50.0), Parameter('input_timeout', value=5.0))
    dts = []
    forward = node.controller.forward
    node.controller.forward = lambda x, dt: (dts.append(dt), forward(x, dt))[1]   # observe only
    try:
        msg = Imu()
        msg.header.stamp.sec = 100
        node._keep_latest(msg, {})
        node._on_control()                                  # first step: the nominal period
        t0 = time.monotonic()
        wait_for(lambda: time.monotonic() > t0 + 0.03, 2, '30 ms')
        node._on_control()                                  # the same input again
        fresh = Imu()
        fresh.header.stamp.sec, fresh.header.stamp.nanosec = 100, 50_000_000
        node._keep_latest(fresh, {})
        node._on_control()                                  # a new input: from the stamps
        assert dts[0] == 1.0
        assert 0.03 <= dts[1] < 0.5, dts
        assert dts[2] == pytest.approx(0.05)
    finally:
        node.destroy_node()


def test_a_step_that_raises_publishes_the_safe_command_and_stops_after_n_in_a_row(ros):
    """Fault injection (the step throws): each failure publishes the safe command, is counted and
    reported ERROR, the node keeps running and recovers; max_step_failures in a row: the safe
    command goes out, then the node stops (SystemExit 1)."""
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    ns = '/li_boom'
    port = free_port()
    counter = Counter(ns)
    listener = DiagnosticsListener('test_boom_listener')
    node = make_node(ns, Parameter('metrics_port', value=port),
                     Parameter('max_step_failures', value=3),
                     # Published by hand: no stale-input zero command between two publishes.
                     Parameter('input_timeout', value=30.0),
                     Parameter('diagnostic_updater.period', value=0.25))
    talker = Node('boom_talker', namespace=ns)
    pub = talker.create_publisher(Imu, 'imu/data', 10)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    exits = []

    def spin():
        try:
            executor.spin()
        except SystemExit as e:
            exits.append(e.code)
    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    step = node.controller._step

    def boom(*_args):
        raise RuntimeError('INTERNAL: injected step failure')
    msg = Imu()
    msg.angular_velocity.z, msg.linear_acceleration.y = 0.2, 0.06
    try:
        def primed():
            pub.publish(msg)
            return counter.commands
        wait_for(primed, 20, 'a first command', interval=0.1)
        assert counter.commands[-1] != (0.0, 0.0)
        for _ in range(2):                           # two failures: below the limit of 3
            node.controller._step = boom
            n = len(counter.commands)
            pub.publish(msg)
            wait_for(lambda: len(counter.commands) > n, 10, 'a command after the failure')
            assert counter.commands[-1] == (0.0, 0.0)
            wait_for(lambda: listener.level('liquid_inference: outputs') == 2, 10, 'outputs ERROR')
            assert 'injected step failure' in listener.message('liquid_inference: outputs')
            node.controller._step = step             # a good step resets the run of failures
            n = len(counter.commands)
            pub.publish(msg)
            wait_for(lambda: len(counter.commands) > n, 10, 'a command after recovery')
            assert counter.commands[-1] != (0.0, 0.0) and thread.is_alive()
        failed = sample_value(scrape(port), 'liquid_edge_inference_errors_total',
                              reason='step_failed')
        assert failed >= 2 and failed == counter.commands.count((0.0, 0.0))   # one safe command each
        node.controller._step = boom                 # now three in a row
        for i in range(3):
            n = len(counter.commands)
            pub.publish(msg)
            wait_for(lambda: len(counter.commands) > n, 10, f'failure {i + 1}')
            assert counter.commands[-1] == (0.0, 0.0)
        thread.join(10)
        assert exits == [1] and not thread.is_alive()
    finally:
        executor.shutdown(timeout_sec=2)
        talker.destroy_node()
        node.destroy_node()
        listener.close()
        counter.close()


def test_accuracy_is_never_scored_against_old_ground_truth(ros):
    """ground_truth.max_age: truth older than it is not scored against, and the accuracy gauge
    is absent (not the last value) until fresh truth comes."""
    from nav_msgs.msg import Odometry
    from rclpy.parameter import Parameter
    node = make_node('/li_truth', Parameter('metrics_port', value=-1),
                     Parameter('ground_truth.topic', value='odom'),
                     # Wide enough that five steps and an update on a loaded machine fit in
                     # it before the truth is let age.
                     Parameter('ground_truth.max_age', value=0.5),
                     Parameter('input_timeout', value=5.0))
    try:
        truth = Odometry()
        msg = Imu()
        node._on_truth(truth)
        for i in range(5):
            msg.header.stamp.nanosec = i * 5_000_000
            node._on_message(msg, {})
        accuracy = node.monitor.quality.accuracy
        assert accuracy.count == 5
        node.monitor.update()
        assert node.metrics.accuracy is not None
        t0 = time.monotonic()
        wait_for(lambda: time.monotonic() > t0 + 0.6, 2, 'the truth to age past 0.5 s')
        for i in range(5, 10):
            msg.header.stamp.nanosec = i * 5_000_000
            node._on_message(msg, {})
        assert accuracy.count == 5                     # not scored against the old truth
        node.monitor.update()
        assert node.metrics.accuracy is None
        stat = status_of(node, 'outputs')
        assert stat.level == b'\x01' and 'accuracy not scored' in stat.message, stat.message
        node._on_truth(truth)
        node._on_message(msg, {})
        assert accuracy.count == 6
        stat = status_of(node, 'outputs')             # what the accuracy is measured against
        assert 'vs /li_truth/odom' in stat.message, stat.message
    finally:
        node.destroy_node()


# ---- fail-safe: never act on input the node no longer has (issue 17) --------------------------

def record_commands(node) -> List[tuple]:
    """(monotonic time, (linear.x, angular.z)) of every command the node publishes (observed on
    its way to the real publisher)."""
    sent: List[tuple] = []
    publish = node._pub.publish

    def observed(out):
        sent.append((time.monotonic(), (out.linear.x, out.angular.z)))
        publish(out)
    node._pub.publish = observed
    return sent


def imu_inputs(node, start: int, n: int, nan: bool = False, stamp_offset_s: int = 100):
    """n Imu inputs through the node's own subscription callback, stamps 5 ms apart."""
    msg = Imu()
    msg.linear_acceleration.y = 0.06
    for i in range(start, start + n):
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(
            stamp_offset_s * 1_000_000_000 + i * 5_000_000, 1_000_000_000)
        msg.angular_velocity.z = float('nan') if nan else 0.2
        node._on_message(msg, {})


def inputs_status(node):
    return status_of(node, 'inputs')


def test_a_sensor_failing_to_nan_is_an_outage_even_with_hold(ros):
    """on_non_finite hold, a sensor that keeps publishing NaN: within input_timeout the last good
    command is held; past it the stale policy applies (the zero command, once), never the held
    command again, counted and reported as stale input."""
    from rclpy.parameter import Parameter
    node = make_node('/li_fs_nan', Parameter('metrics_port', value=-1),
                     Parameter('on_non_finite', value='hold'),
                     Parameter('input_timeout', value=0.3), Parameter('dt_default', value=0.005))
    sent = record_commands(node)
    try:
        imu_inputs(node, 0, 20)
        held = sent[-1][1]
        assert held != (0.0, 0.0)
        t_nan = time.monotonic()
        i = 20
        while time.monotonic() < t_nan + 0.9:
            imu_inputs(node, i, 1, nan=True)
            i += 1
            time.sleep(0.005)               # pacing a 200 Hz sensor, not synchronisation
        late = [c for t, c in sent if t > t_nan + 0.45]
        assert held not in late, f'{late.count(held)} of {len(late)} late commands held'
        assert [c for t, c in sent if t > t_nan and c != held] == [(0.0, 0.0)]
        assert node.metrics.errors['input_stale'] == 1
        stat = inputs_status(node)
        assert stat.level == b'\x02' and stat.message.startswith('input stale for '), stat.message
    finally:
        node.destroy_node()


@pytest.mark.parametrize('policy', ['zero', 'stop'])
def test_nan_after_an_outage_never_brings_the_pre_outage_command_back(ros, policy):
    from rclpy.parameter import Parameter
    node = make_node(f'/li_fs_back_{policy}', Parameter('metrics_port', value=-1),
                     Parameter('on_non_finite', value='hold'),
                     Parameter('on_input_stale', value=policy),
                     Parameter('input_timeout', value=0.3), Parameter('dt_default', value=0.005))
    sent = record_commands(node)
    try:
        imu_inputs(node, 0, 20)
        pre = sent[-1][1]
        import rclpy

        def watchdog_saw_it():         # the node's own timers, run by spinning it
            rclpy.spin_once(node, timeout_sec=0.05)
            return inputs_status(node).level == b'\x02'
        wait_for(watchdog_saw_it, 5, 'the outage noticed by the watchdog')
        assert [c for _, c in sent[20:]] == ([] if policy == 'stop' else [(0.0, 0.0)])
        n = len(sent)
        imu_inputs(node, 200, 20, nan=True)          # the sensor is back, with NaN
        after = [c for _, c in sent[n:]]
        assert pre not in after, f'{after.count(pre)} of {len(after)} brought it back'
        assert after == []                           # still no usable input: still stale
        assert inputs_status(node).level == b'\x02'
    finally:
        node.destroy_node()


def test_a_jump_in_header_stamps_resets_the_state_instead_of_one_giant_step(ros):
    """An NTP step of 200 s on the sensor host: the step gets the nominal period from a reset
    state (not dt_max from the old one), counted as stamp_gap, WARN on the inputs status."""
    from rclpy.parameter import Parameter
    node = make_node('/li_fs_gap', Parameter('metrics_port', value=-1),
                     Parameter('dt_default', value=0.005))
    dts = []
    forward = node.controller.forward
    node.controller.forward = lambda x, dt: (dts.append(dt), forward(x, dt))[1]   # observe only
    try:
        imu_inputs(node, 0, 10)
        resets = node.controller.resets
        imu_inputs(node, 10, 1, stamp_offset_s=300)
        assert dts[-1] == pytest.approx(0.005), dts
        assert node.controller.resets == resets + 1
        assert node.metrics.errors.get('stamp_gap') == 1
        stat = inputs_status(node)
        assert stat.level == b'\x01' and stat.message.startswith('stamp gap: 200.0'), stat.message
        assert len(stat.message) <= 60, stat.message       # docs/DIAGNOSTICS.md
        imu_inputs(node, 11, 1, stamp_offset_s=300)     # and on it goes on the new clock
        assert dts[-1] == pytest.approx(0.005) and node.metrics.errors['stamp_gap'] == 1
    finally:
        node.destroy_node()
