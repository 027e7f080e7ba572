"""Parity of our JAX CfC/LTC with ncps torch (goldens in test/data/lnn/), step vs scan, shapes, dt."""
from __future__ import annotations

import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from liquid_edge_ros_monitor.lnn import load_model
from liquid_edge_ros_monitor.lnn.cells import timespans_from_stamps

DATA = Path(__file__).resolve().parent / 'data' / 'lnn'
CASES = sorted(p.name[:-len('_io.npz')] for p in DATA.glob('*_io.npz'))
RTOL, ATOL = 1e-5, 1e-6


def test_goldens_cover_every_mode() -> None:
    assert {'cfc_default', 'cfc_no_gate', 'cfc_pure', 'cfc_proj_3layers', 'ltc_constrained',
            'ltc_unconstrained'} <= set(CASES)


@pytest.mark.parametrize('case', CASES)
@pytest.mark.parametrize('timing', ['dt1', 'dt'])
def test_sequence_matches_ncps_torch(case: str, timing: str) -> None:
    m = load_model(DATA / f'{case}.npz')
    io = np.load(DATA / f'{case}_io.npz')
    xs = io['inputs']
    dts = np.ones(len(xs), np.float32) if timing == 'dt1' else io['timespans']
    h, ys = m.sequence(m.params, m.init_state(), jnp.asarray(xs), jnp.asarray(dts))
    np.testing.assert_allclose(np.asarray(ys), io[f'y_{timing}'], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(np.asarray(h), io[f'h_{timing}'], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize('case', ['cfc_default', 'cfc_pure', 'cfc_wired_ncp', 'ltc_constrained',
                                  'ltc_wired_ncp'])
def test_step_loop_agrees_with_scan(case: str) -> None:
    m = load_model(DATA / f'{case}.npz')
    io = np.load(DATA / f'{case}_io.npz')
    h = m.init_state()
    ys = []
    for x, dt in zip(io['inputs'], io['timespans']):
        h, y = m.step(m.params, h, jnp.asarray(x), jnp.float32(dt))
        assert h.shape == (m.state_size,) and h.dtype == jnp.float32
        assert y.shape == (m.n_outputs,) and y.dtype == jnp.float32
        ys.append(np.asarray(y))
    h_scan, ys_scan = m.sequence(m.params, m.init_state(), jnp.asarray(io['inputs']),
                                 jnp.asarray(io['timespans']))
    np.testing.assert_allclose(np.stack(ys), np.asarray(ys_scan), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(h), np.asarray(h_scan), rtol=1e-6, atol=1e-7)
    # And both against torch, so the step path is checked on its own too.
    np.testing.assert_allclose(np.stack(ys), io['y_dt'], rtol=RTOL, atol=ATOL)


def test_elapsed_time_changes_the_output() -> None:
    """dt is really used: the same inputs with a different dt give different outputs."""
    for case in ('cfc_default', 'ltc_constrained'):
        io = np.load(DATA / f'{case}_io.npz')
        assert not np.allclose(io['y_dt1'], io['y_dt'])
        m = load_model(DATA / f'{case}.npz')
        x = jnp.asarray(io['inputs'][0])
        _, y1 = m.step(m.params, m.init_state(), x, jnp.float32(1.0))
        _, y2 = m.step(m.params, m.init_state(), x, jnp.float32(0.1))
        assert not np.allclose(np.asarray(y1), np.asarray(y2))


def test_shapes_and_sizes() -> None:
    m = load_model(DATA / 'cfc_proj_3layers.npz')
    assert (m.cell, m.mode, m.n_inputs, m.units, m.state_size, m.n_outputs) == \
        ('cfc', 'default', 5, 8, 8, 3)
    h0 = m.init_state()
    assert h0.shape == (8,) and h0.dtype == jnp.float32 and not np.any(np.asarray(h0))
    w = load_model(DATA / 'ltc_wired_ncp.npz')
    assert (w.cell, w.units, w.n_outputs) == ('ltc', 12, 2)
    assert load_model(DATA / 'cfc_wired_ncp.npz').n_outputs == 3   # motor neurons of the NCP


def test_macs_per_step_counts_the_weights() -> None:
    m = load_model(DATA / 'cfc_default.npz')
    # backbone (n + h) U, four heads U h each: n=5, h=8, U=16.
    assert m.macs_per_step() == (5 + 8) * 16 + 4 * 16 * 8
    ltc = load_model(DATA / 'ltc_constrained.npz')
    assert ltc.macs_per_step() == 3 * 5 * 8 + 6 * (3 * 8 * 8 + 3 * 8)
    assert 'CfC/default' in m.describe() and '768 parameters' in m.describe()


def test_timespans_from_stamps() -> None:
    stamps = [10.0, 10.005, 10.010, 10.016, 10.021]
    dts = timespans_from_stamps(stamps)
    assert dts.dtype == np.float32 and dts.shape == (5,)
    np.testing.assert_allclose(dts, [0.005, 0.005, 0.005, 0.006, 0.005], atol=1e-6)
    np.testing.assert_allclose(timespans_from_stamps(stamps, first=0.25)[0], 0.25)
    assert timespans_from_stamps([3.0])[0] == 1.0
    with pytest.raises(ValueError, match='index 2'):
        timespans_from_stamps([1.0, 2.0, 1.5])


def test_no_torch_or_ncps_imported() -> None:
    """The JAX cells need no torch: loading and running a model imports neither torch nor ncps
    (checked in a process of its own: the example node's test imports torch in this one)."""
    import subprocess
    probe = ('import sys, numpy as np\n'
             'from liquid_edge_ros_monitor.lnn import load_model\n'
             f'm = load_model({str(DATA / "cfc_default.npz")!r})\n'
             'm.step(m.params, m.init_state(), np.zeros(m.n_inputs, np.float32), np.float32(1))\n'
             "print('torch' in sys.modules, 'ncps' in sys.modules)")
    r = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ['False', 'False']
