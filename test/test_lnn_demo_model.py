"""The shipped demo model (models/imu_velocity.*) really does its job on data it has not seen."""
from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np

from liquid_edge_ros_monitor.lnn import load_model
from liquid_edge_ros_monitor.lnn import demo_task as task

MODEL = Path(__file__).resolve().parents[1] / 'models' / 'imu_velocity.npz'
ALERT_THRESHOLD = 0.85   # the seed's "model accuracy < 0.85" alert (REFERENCE.md section 4)


def test_shipped_model_metadata() -> None:
    m = load_model(MODEL)
    assert (m.cell, m.n_inputs, m.n_outputs) == ('cfc', 3, 2)
    assert m.input_names == task.INPUT_NAMES and m.output_names == task.OUTPUT_NAMES
    assert m.input_mean is not None and m.input_std is not None and np.all(m.input_std > 0)
    held = m.training['held_out']
    assert held['accuracy'] >= ALERT_THRESHOLD and held['tolerance'] == list(task.TOLERANCE)


def test_accuracy_on_fresh_sequences_clears_the_alert_threshold() -> None:
    """Seeds never used in training (1) nor in the recorded held-out score (1000)."""
    result = task.evaluate(load_model(MODEL), seed=4242, n_sequences=24)
    assert result['accuracy'] >= ALERT_THRESHOLD, result
    assert result['rmse'][0] < 0.05 and result['rmse'][1] < 0.05, result


def test_sim_robot_constant_motion_is_estimated() -> None:
    """The demo's own robot drives 0.3 m/s, 0.2 rad/s: after the warm-up every output is within
    tolerance of that on most steps."""
    rng = np.random.default_rng(7)
    n = int(10 * task.RATE_HZ)
    t = np.arange(n) / task.RATE_HZ
    vw = np.tile(np.asarray(task.SIM_MOTION), (n, 1))
    xs = task.imu_from_motion(rng, t, vw).astype(np.float32)
    dts = np.full(n, 1.0 / task.RATE_HZ, np.float32)
    m = load_model(MODEL)
    _, ys = m.sequence(m.params, m.init_state(), jnp.asarray(xs), jnp.asarray(dts))
    result = task.score(np.asarray(ys), vw, int(task.WARMUP_S * task.RATE_HZ))
    assert result['accuracy'] >= 0.95, result


def test_generator_is_reproducible_and_in_range() -> None:
    a = task.make_batch(3, 4, 2.0)
    b = task.make_batch(3, 4, 2.0)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    xs, dts, ys = a
    assert xs.shape == (4, 400, 3) and dts.shape == (4, 400) and ys.shape == (4, 400, 2)
    assert np.all((dts > 0.0045) & (dts < 0.0055))
    assert ys[..., 0].min() >= -1e-6 and ys[..., 0].max() <= 0.6 + 1e-6
    assert np.abs(ys[..., 1]).max() <= 0.5 + 1e-6
    # the centripetal channel carries v * w (noise sigma 0.02)
    np.testing.assert_allclose(np.mean(xs[..., 2] - ys[..., 0] * ys[..., 1]), 0.0, atol=0.005)


def test_score_counts_steps_within_tolerance() -> None:
    target = np.zeros((10, 2))
    pred = target.copy()
    pred[7:, 0] = 0.06            # 3 of 8 scored steps off in speed
    r = task.score(pred, target, warmup_steps=2)
    assert r['accuracy'] == 5 / 8 and r['accuracy_per_output'] == [5 / 8, 1.0]
    np.testing.assert_allclose(r['rmse'][0], np.sqrt(3 * 0.06 ** 2 / 8))
