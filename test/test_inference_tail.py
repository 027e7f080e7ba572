"""Tail-based sampling of the inference callback: which traces are kept, why, and what it costs the
loop. The decisions on their own (pure), then the node's callback in this process exporting to a
real OTLP receiver, then the node in its own process under an anomaly storm.
"""
from __future__ import annotations

import json
import logging
import math
import time

import numpy as np
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Imu

from conftest import free_port, wait_for
from otlp_receiver import OtlpReceiver
from ros_helpers import sample_value, scrape
from test_inference_node import GOLDEN, Counter, start_inference

from liquid_edge_ros_monitor.instrument.tail_sampling import TailSampler, TokenBucket

FIELDS = ['angular_velocity.z', 'linear_acceleration.x', 'linear_acceleration.y',
          'linear_acceleration.z', 'angular_velocity.x']


# ---- decisions (pure) ----------------------------------------------------------------------------

def test_anomalies_are_kept_with_their_reason_and_normal_callbacks_by_head_sampling():
    s = TailSampler(head_ratio=0.0, slow_threshold_s=0.005, startup=2, max_anomalies_per_s=100)
    assert s.decide(False, 0.001, 0.01, 0.0) == 'startup'
    assert s.decide(False, 0.001, 0.01, 0.1) == 'startup'
    assert s.decide(False, 0.001, 0.01, 0.2) is None           # start-up is over, ratio 0
    assert s.decide(True, 0.001, 0.01, 0.3) == 'error'
    assert s.decide(False, 0.02, 0.01, 0.4) == 'deadline'        # deadline wins over slow
    assert s.decide(False, 0.006, 0.01, 0.5) == 'slow'
    assert s.decide(False, 0.006, None, 0.6) == 'slow'           # no deadline known
    assert s.kept == {'error': 1, 'deadline': 1, 'slow': 2, 'startup': 2, 'head': 0}
    everything = TailSampler(head_ratio=1.0, slow_threshold_s=0.005, startup=0,
                             max_anomalies_per_s=100)
    assert [everything.decide(False, 0.001, None, t) for t in range(3)] == ['head'] * 3


def test_head_ratio_is_a_share_of_the_normal_callbacks():
    rnd = np.random.default_rng(3).random
    s = TailSampler(head_ratio=0.1, slow_threshold_s=1.0, startup=0, max_anomalies_per_s=1,
                    rnd=lambda: float(rnd()))
    kept = sum(s.decide(False, 0.001, None, i * 0.005) == 'head' for i in range(10_000))
    assert 850 <= kept <= 1150, kept


def test_an_anomaly_storm_is_rate_limited_and_counted():
    s = TailSampler(head_ratio=0.0, slow_threshold_s=0.005, startup=0, max_anomalies_per_s=10)
    # 1 kHz of errors for 2 s: the burst (one second's worth) then 10 per second.
    reasons = [s.decide(True, 0.001, None, i * 0.001) for i in range(2000)]
    kept = sum(r == 'error' for r in reasons)
    assert 10 + 19 <= kept <= 10 + 21, kept
    assert s.dropped['rate_limited'] == 2000 - kept
    # Over the limit an anomaly keeps its head-sampling chance.
    h = TailSampler(head_ratio=1.0, slow_threshold_s=0.005, startup=0, max_anomalies_per_s=1)
    assert [h.decide(True, 0.001, None, 0.0) for _ in range(3)] == ['error', 'head', 'head']
    assert h.dropped['rate_limited'] == 0


def test_token_bucket_refills_at_its_rate_up_to_its_burst():
    b = TokenBucket(rate=2.0, burst=3.0)
    assert [b.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert b.take(0.5) and not b.take(0.5)            # 0.5 s at 2/s: one token
    assert [b.take(100.0) for _ in range(4)] == [True, True, True, False]   # capped at burst


# ---- the node's callback, in this process, to a real receiver --------------------------------------

def _node(ns: str, rx: OtlpReceiver, **params: object):
    from liquid_edge_ros_monitor.inference.node import LiquidInference
    base = {'model_path': str(GOLDEN), 'features': FIELDS, 'metrics_port': -1,
            'tracing.endpoint': rx.endpoint, 'tracing.sampling_ratio': 0.0}
    base.update(params)
    return LiquidInference(namespace=ns, parameter_overrides=[
        Parameter(k, value=v) for k, v in base.items()])


def test_exactly_the_anomalous_callbacks_are_traced_with_their_reason_and_log_ids(ros, capsys):
    """Head ratio 0: a NaN input, a step made slow and a step made late (fault injection: the
    step sleeps) give exactly one trace each, with the right reason; the 57 normal callbacks none.
    JSON log lines written inside kept callbacks carry their exported trace id; those of dropped
    callbacks carry an id no exported span has."""
    log = logging.getLogger('liquid_edge_ros_monitor.test_tail')
    log.setLevel(logging.INFO)
    with OtlpReceiver('grpc') as rx:
        node = _node('/tail_exact', rx, **{
            'tracing.startup_traces': 0, 'tracing.slow_threshold': 0.05,
            'control_period': 0.2, 'json_logging': True})
        try:
            real = node.controller._step
            plan = {20: 0.1, 30: 0.3}            # call -> injected delay: slow, then late
            call = [0]

            def step(packed, h, x, dt):
                log.info('step', extra={'call': call[0]})
                time.sleep(plan.get(call[0], 0.0))     # the fault itself, not synchronisation
                return real(packed, h, x, dt)
            node.controller._step = step
            msg = Imu()
            for i in range(60):
                call[0] = i
                msg.header.stamp.sec, msg.header.stamp.nanosec = 100, i * 5_000_000
                msg.angular_velocity.z = float('nan') if i == 10 else 0.2
                node._on_input(msg, {'publication_sequence_number': i + 1})
            assert node.monitor.tracing.force_flush(10.0)
            roots = {s.attributes['dds.publication_sequence_number'] - 1: s
                     for s in rx.spans() if s.name == 'liquid_inference.callback'}
            assert {i: r.attributes['liquid_edge.keep_reason'] for i, r in roots.items()} == \
                {10: 'error', 20: 'slow', 30: 'deadline'}
            assert roots[10].attributes['lnn.error'] == 'non_finite_input'
            assert roots[10].status_code == 2                      # ERROR
            assert (roots[30].end_ns - roots[30].start_ns) > 0.3e9  # its real duration
            children = [s for s in rx.spans() if s.name != 'liquid_inference.callback']
            assert sorted(s.name for s in children) == sorted(
                ['preprocess', 'forward', 'publish'] * 3)
            by_id = {r.span_id: r for r in roots.values()}
            assert all(c.parent_span_id in by_id and c.trace_id == by_id[c.parent_span_id].trace_id
                       for c in children)
            forward = next(c for c in children if c.name == 'forward'
                           and by_id[c.parent_span_id] is roots[30])
            assert forward.end_ns - forward.start_ns > 0.3e9       # the late stage is the step
            assert node.metrics.deadline_misses == 1
        finally:
            node.destroy_node()
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith('{')]
    steps = {e['call']: e for e in lines if e.get('message') == 'step'}
    assert sorted(steps) == [i for i in range(60) if i != 10]   # a NaN input never steps
    exported = {r.trace_id for r in roots.values()}
    assert {steps[20]['trace_id'], steps[30]['trace_id']} <= exported
    assert steps[20]['span_id'] == roots[20].span_id            # the root's id, given up front
    dropped = [steps[i]['trace_id'] for i in steps if i not in (20, 30)]
    assert len(set(dropped)) == len(dropped) and not set(dropped) & exported


def test_startup_traces_are_the_first_callbacks(ros):
    with OtlpReceiver('grpc') as rx:
        node = _node('/tail_startup', rx, **{'tracing.startup_traces': 5,
                                            'tracing.slow_threshold': 10.0,
                                            'control_period': 10.0})
        try:
            msg = Imu()
            for i in range(40):
                msg.header.stamp.sec, msg.header.stamp.nanosec = 100, i * 5_000_000
                node._on_input(msg, {'publication_sequence_number': i + 1})
            assert node.monitor.tracing.force_flush(10.0)
            roots = [s for s in rx.spans() if s.name == 'liquid_inference.callback']
            assert sorted(s.attributes['dds.publication_sequence_number'] for s in roots) == \
                [1, 2, 3, 4, 5]
            assert {s.attributes['liquid_edge.keep_reason'] for s in roots} == {'startup'}
        finally:
            node.destroy_node()


def test_an_anomaly_storm_keeps_the_loop_rate_and_counts_the_drops(ros, ros_process):
    """A sensor that sends only NaN at 200 Hz to the node in its own process: every input still
    gets a (safe) command, at most the rate limit's traces are kept, the rest counted dropped.
    input_timeout 30 s: the storm stays an anomaly of fresh input (past the timeout, NaN-only
    input is an outage and the stale policy answers it once; test_inference_control_loop)."""
    ns = '/tail_storm'
    port = free_port()
    counter = Counter(ns)
    talker = Node('storm_talker', namespace=ns)
    pub = talker.create_publisher(Imu, 'imu/data', QoSProfile(
        depth=500, reliability=ReliabilityPolicy.RELIABLE))
    try:
        with OtlpReceiver('grpc') as rx:
            start_inference(ros_process, ns, '-p', f'tracing.endpoint:={rx.endpoint}',
                            '-p', 'tracing.sampling_ratio:=0.0',
                            '-p', 'tracing.max_anomalies_per_s:=10.0',
                            '-p', 'tracing.startup_traces:=0',
                            '-p', f'metrics_port:={port}', '-p', 'input_reliability:=reliable',
                            '-p', 'qos_depth:=500', '-p', 'input_timeout:=30.0')
            wait_for(lambda: pub.get_subscription_count() > 0 and counter.node.count_publishers(
                f'{ns}/cmd_vel') > 0, 40, 'the inference node to subscribe')
            msg = Imu()
            msg.angular_velocity.z = float('nan')
            first = time.monotonic()     # the rate limit counts from the first NaN

            def primed():
                pub.publish(msg)
                return counter.commands
            wait_for(primed, 20, 'a first command', interval=0.1)
            n0 = len(counter.commands)
            sent, period = 0, 0.005
            start = time.monotonic()
            while time.monotonic() - start < 3.0:
                now_ns = time.time_ns()
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now_ns, 1_000_000_000)
                pub.publish(msg)
                sent += 1
                delay = start + sent * period - time.monotonic()
                if delay > 0:
                    time.sleep(delay)       # pacing like a sensor, not synchronisation
            wait_for(lambda: len(counter.commands) - n0 >= 0.95 * sent, 20,
                     f'commands for 95 % of {sent} NaN inputs')
            assert all(math.isfinite(v) for c in counter.commands for v in c)

            def counts():
                text = scrape(port)
                return (sample_value(text, 'liquid_edge_inference_traces_kept_total',
                                     reason='error'),
                        sample_value(text, 'liquid_edge_inference_traces_dropped_total',
                                     reason='rate_limited'),
                        sample_value(text, 'liquid_edge_inference_errors_total',
                                     reason='non_finite_input'))
            # The trace counters are refreshed each update period, the error counter per input.
            kept, dropped, errors = wait_for(
                lambda: (lambda c: c if c[2] and c[2] >= sent and c[0] + c[1] == c[2]
                         else None)(counts()), 10, 'every NaN input counted, kept or dropped')
            elapsed = time.monotonic() - first
            # Burst of 10, then 10 per second: never more, however many anomalies.
            assert 10 <= kept <= 10 + 10 * elapsed + 1, (kept, elapsed)
            assert dropped >= sent - kept, (kept, dropped, sent)
            rx.wait_for(lambda spans: sum(s.name == 'liquid_inference.callback'
                                          for s in spans) >= kept, timeout=15)
            roots = [s for s in rx.spans() if s.name == 'liquid_inference.callback']
            assert {s.attributes['liquid_edge.keep_reason'] for s in roots} == {'error'}
    finally:
        talker.destroy_node()
        counter.close()


# ---- sensor-to-command latency -----------------------------------------------------------------

def test_a_stamped_command_carries_its_inputs_stamp(ros):
    """TwistStamped out: header.stamp is the input's (derived data), the frame the parameter's,
    so a monitor's header latency on the command topic is the sensor-to-command latency."""
    from liquid_edge_ros_monitor.inference.node import LiquidInference
    node = LiquidInference(namespace='/stamped', parameter_overrides=[
        Parameter('model_path', value=str(GOLDEN)), Parameter('features', value=FIELDS),
        Parameter('metrics_port', value=-1), Parameter('tracing.enabled', value=False),
        Parameter('output_type', value='geometry_msgs/msg/TwistStamped'),
        Parameter('outputs', value=['twist.linear.x', 'twist.angular.z']),
        Parameter('output_frame_id', value='base_link')])
    try:
        msg = Imu()
        msg.header.frame_id = 'imu_link'
        for i in range(3):
            msg.header.stamp.sec, msg.header.stamp.nanosec = 1700 + i, 123 + i
            node._on_input(msg, {'publication_sequence_number': i + 1})
            out = node.io.out_msg
            assert (out.header.stamp.sec, out.header.stamp.nanosec) == (1700 + i, 123 + i)
            assert out.header.frame_id == 'base_link'
            assert math.isfinite(out.twist.linear.x) and math.isfinite(out.twist.angular.z)
    finally:
        node.destroy_node()
