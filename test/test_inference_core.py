"""The inference node's pure parts: guarded step, drift, accuracy, latency ring, fields, parameters."""
from __future__ import annotations

import numpy as np
import pytest
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from sensor_msgs.msg import Imu

from conftest import REPO
from liquid_edge_ros_monitor.core.params import ConfigError
from liquid_edge_ros_monitor.inference.controller import (NON_FINITE_INPUT, NON_FINITE_OUTPUT, OK,
                                                          Controller, nominal_dt)
from liquid_edge_ros_monitor.instrument.stats import (Accuracy, DriftScore, InputRing, LatencyRing,
                                                      LogThrottle)
from liquid_edge_ros_monitor.inference import controller as controller_mod
from liquid_edge_ros_monitor.inference.config import parse_inference_config
from liquid_edge_ros_monitor.lnn import Model, load_model
from liquid_edge_ros_monitor.inference.fields import has_header, numeric_getters, numeric_setters

GOLDEN = REPO / 'test' / 'data' / 'lnn' / 'cfc_tanh_nobackbone.npz'   # 5 inputs, 6 units, 2 out


@pytest.fixture(scope='module')
def model() -> Model:
    return load_model(GOLDEN)


def overflowing(model: Model) -> Model:
    """The same network with an output layer so large (finite float32) that outputs overflow."""
    params = model.tensors()
    params['fc.weight'] = np.full_like(params['fc.weight'], 3e38)
    return Model(model.hyper, params)


def test_step_matches_the_model_and_keeps_state(model):
    c = Controller(model)
    c.warm_up(0.01)
    x = np.array([0.2, 0.1, 0.06, 9.8, 0.0], dtype=np.float32)
    y1, s1 = c.forward(x, 0.005)
    y2, _ = c.forward(x, 0.005)
    h, y_ref = model.step(model.params, model.init_state(), x, np.float32(0.005))
    assert s1 == OK and np.allclose(y1, np.asarray(y_ref), rtol=1e-6, atol=1e-7)
    assert not np.allclose(y1, y2)          # the state moved on
    assert c.state_norm() > 0


def test_non_finite_input_is_not_fed_and_the_state_is_kept(model):
    c = Controller(model, hold_on_non_finite=True)
    x = np.ones(5, dtype=np.float32)
    y_good, _ = c.forward(x, 0.005)
    h_before = np.asarray(c.h).copy()
    y, status = c.forward(np.array([np.nan, 1, 1, 1, 1], dtype=np.float32), 0.005)
    assert status == NON_FINITE_INPUT
    assert np.array_equal(y, y_good) and np.array_equal(np.asarray(c.h), h_before)


@pytest.mark.parametrize('hold', [False, True])
def test_non_finite_output_gives_the_safe_command_and_resets(model, hold):
    bad = overflowing(model)
    c = Controller(bad, hold_on_non_finite=hold)
    c.last_good = np.array([0.3, 0.2], dtype=np.float32)     # as if a good step had run
    y, status = c.forward(np.full(5, 5.0, dtype=np.float32), 0.005)
    assert status == NON_FINITE_OUTPUT and np.isfinite(y).all()
    assert y.tolist() == pytest.approx([0.3, 0.2] if hold else [0.0, 0.0])
    assert c.resets == 1 and float(np.abs(np.asarray(c.h)).max()) == 0.0


@pytest.mark.parametrize('hold', [False, True])
def test_a_step_that_raises_gives_the_safe_command_and_resets(model, hold):
    """Fault injection: the jitted step throws (an XLA runtime error cannot be caused on demand)."""
    c = Controller(model, hold_on_non_finite=hold)
    y_good, _ = c.forward(np.ones(5, dtype=np.float32), 0.005)

    def boom(*_args):
        raise RuntimeError('INTERNAL: device lost\nsecond line')
    c._step = boom
    y, status = c.forward(np.ones(5, dtype=np.float32), 0.005)
    assert status == controller_mod.STEP_FAILED and np.isfinite(y).all()
    assert np.array_equal(y, y_good if hold else np.zeros(2, dtype=np.float32))
    assert c.resets == 1 and float(np.abs(np.asarray(c.h)).max()) == 0.0
    assert 'device lost' in str(c.last_error)


def test_input_timeout_defaults_to_ten_input_periods():
    m = load_model(GOLDEN)
    trained = Model(m.hyper, m.tensors(), training={'dt': 0.02})
    fast = Model(m.hyper, m.tensors(), training={'dt': 0.001})
    timeout = controller_mod.input_timeout
    assert timeout(0.0, trained, 0.0) == pytest.approx(0.2)       # 50 Hz input
    assert timeout(0.0, fast, 0.0) == pytest.approx(0.1)          # floor: scheduling jitter
    assert timeout(0.0, trained, 0.05) == pytest.approx(0.5)      # dt_default wins
    assert timeout(0.3, trained, 0.0) == 0.3                      # the parameter wins
    assert timeout(0.0, m, 0.0) == 1.0       # period unknown: not 10 x ncps's nominal 1.0


def test_log_throttle_lets_one_line_through_per_interval_and_counts_the_rest():
    t = LogThrottle(10.0)
    assert t.allow(100.0) == 0
    assert [t.allow(100.0 + i * 0.005) for i in range(1, 200)] == [None] * 199
    assert t.allow(110.0) == 199 and t.allow(110.1) is None


def test_nominal_dt_prefers_the_parameter_then_the_training_period(model):
    assert nominal_dt(model, 0.02) == 0.02
    assert nominal_dt(model, 0.0) == 1.0                     # no training info: ncps's default
    trained = Model(model.hyper, model.tensors(), training={'dt': 0.005})
    assert nominal_dt(trained, 0.0) == 0.005


def test_drift_score_is_small_in_distribution_and_grows_outside():
    rng = np.random.default_rng(1)
    mean, std = np.array([0.0, 10.0]), np.array([1.0, 2.0])
    d = DriftScore(mean, std, window=50)
    for _ in range(500):
        d.add(mean + std * rng.standard_normal(2))
    assert 0.6 < d.value < 1.0                               # E|z| = 0.80 for a normal variable
    for _ in range(500):
        d.add(mean + 6 * std)
    assert d.value > 5.5
    assert DriftScore(None, None, 10).available is False


def test_drift_scored_in_batches_equals_one_by_one():
    """The monitor scores inputs on its update timer (`add_many` over a ring), not per callback:
    the same number as scoring each input as it came."""
    rng = np.random.default_rng(2)
    mean, std = np.array([0.0, 10.0, -1.0]), np.array([1.0, 2.0, 0.5])
    one, batched = DriftScore(mean, std, window=50), DriftScore(mean, std, window=50)
    ring = InputRing(size=64)
    for chunk in (1, 7, 40, 64, 3):
        xs = mean + std * rng.standard_normal((chunk, 3)) * 1.5
        for x in xs:
            one.add(x)
            ring.add(x)
        batched.add_many(ring.take_new())
        assert batched.value == pytest.approx(one.value, rel=1e-12)
    assert ring.take_new().shape == (0, 3)
    ring.add(np.zeros(4))                       # another width: not kept, counted
    assert ring.mismatched == 1 and ring.take_new().shape == (0, 3)


def test_accuracy_over_a_window():
    a = Accuracy(tolerance=0.05, window=4)
    assert a.value is None
    truth = np.array([0.3, 0.2])
    a.add(np.array([0.31, 0.19]), truth)
    a.add(np.array([0.40, 0.20]), truth)                     # linear.x off by 0.1
    assert a.value == 0.5
    for _ in range(4):
        a.add(truth, truth)
    assert a.value == 1.0 and a.count == 4


def test_latency_ring_quantiles_and_new_values():
    r = LatencyRing(size=8)
    for v in range(1, 6):
        r.add(v / 1000)
    assert r.take_new().tolist() == [0.001, 0.002, 0.003, 0.004, 0.005]
    assert r.take_new().size == 0
    for v in range(6, 21):
        r.add(v / 1000)
    new = r.take_new()
    assert new.size == 8 and new[-1] == 0.02                 # at most one ring
    assert r.quantile(0.5) == pytest.approx(0.0165)


def test_message_field_paths():
    get = numeric_getters(Imu, ['angular_velocity.z', 'linear_acceleration.x'])
    m = Imu()
    m.angular_velocity.z, m.linear_acceleration.x = 0.2, -1.5
    assert get(m) == (0.2, -1.5)
    assert numeric_getters(Odometry, ['twist.twist.linear.x'])(Odometry()) == (0.0,)
    setters = numeric_setters(Twist, ['linear.x', 'angular.z'])
    t = Twist()
    for s, v in zip(setters, (0.3, 0.2)):
        s(t, v)
    assert (t.linear.x, t.angular.z) == (0.3, 0.2)
    assert has_header(Imu) and not has_header(Twist)


@pytest.mark.parametrize('cls,path,fragment', [
    (Imu, 'angular_velocity.w', "angular_velocity has no field 'w'"),
    (Imu, 'header.frame_id', 'is string, not a number'),
    (Imu, 'orientation_covariance.x', 'not a message'),
    (Imu, 'speed', "Imu has no field 'speed'"),
])
def test_bad_field_paths_name_the_path(cls, path, fragment):
    with pytest.raises(ValueError) as e:
        numeric_getters(cls, [path])
    assert fragment in str(e.value) and path in str(e.value)


@pytest.mark.parametrize('values,name,fragment', [
    ({'features': []}, 'features', 'at least one'),
    ({'features': ['Angular.Z']}, 'features', 'not a field path'),
    ({'input_type': 'Imu'}, 'input_type', 'not a message type'),
    ({'on_non_finite': 'explode'}, 'on_non_finite', 'must be one of zero, hold'),
    ({'on_input_stale': 'coast'}, 'on_input_stale', 'must be one of zero, hold, stop'),
    ({'input_timeout': -0.1}, 'input_timeout', '>= 0'),
    ({'max_step_failures': 0}, 'max_step_failures', 'must be'),
    ({'tracing.sampling_ratio': 1.5}, 'tracing.sampling_ratio', 'must be in [0, 1]'),
    ({'tracing.protocol': 'udp'}, 'tracing.protocol', 'grpc or http/protobuf'),
    ({'latency_budget': 0.0}, 'latency_budget', '> 0'),
    ({'energy.static_watts': -3.0}, 'energy.static_watts', '>= 0'),
    ({'ground_truth.topic': 'odom', 'ground_truth.fields': ['twist.twist.linear.x']},
     'ground_truth.fields', 'has 1 paths for 2 outputs'),
])
def test_bad_parameters_name_themselves(values, name, fragment):
    with pytest.raises(ConfigError) as e:
        parse_inference_config(values)
    assert e.value.parameter == name and fragment in str(e.value) and '\n' not in str(e.value)


def test_parameter_defaults_and_tracing_overrides():
    c = parse_inference_config({}, hostname='r1')
    assert c.input_topic == 'imu/data' and c.outputs == ('linear.x', 'angular.z')
    assert c.monitor.tracing['sampling_ratio'] is None        # -1: the OTEL_* variables decide
    c = parse_inference_config({'tracing.sampling_ratio': 0.25})
    assert c.monitor.tracing['sampling_ratio'] == 0.25
    with pytest.raises(ConfigError, match="parameter 'tracng.enabled': unknown"):
        parse_inference_config({}, given=['tracng.enabled'])
