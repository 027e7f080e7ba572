"""Model files: save/load round trip, ncps import, and a one-line error naming the culprit per bad file."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable, Dict

import jax.numpy as jnp
import numpy as np
import pytest

from liquid_edge_ros_monitor.lnn import Model, ModelError, load_model, save_model

DATA = Path(__file__).resolve().parent / 'data' / 'lnn'


def _run(m: Model, case: str) -> np.ndarray:
    io = np.load(DATA / f'{case}_io.npz')
    _, ys = m.sequence(m.params, m.init_state(), jnp.asarray(io['inputs']),
                       jnp.asarray(io['timespans']))
    return np.asarray(ys)


@pytest.mark.parametrize('case', ['cfc_proj_3layers', 'cfc_pure', 'cfc_wired_ncp', 'ltc_unconstrained',
                                  'ltc_wired_ncp'])
def test_round_trip_keeps_outputs_and_metadata(tmp_path: Path, case: str) -> None:
    m = load_model(DATA / f'{case}.json')          # the .json path names the pair too
    m.input_mean = np.arange(5, dtype=np.float32)
    m.input_std = np.full(5, 2.0, np.float32)
    m.input_names = [f'in{i}' for i in range(5)]
    m.output_names = [f'out{i}' for i in range(m.n_outputs)]
    save_model(m, tmp_path / 'copy.npz')
    meta = json.loads((tmp_path / 'copy.json').read_text())
    assert meta['format'] == 'liquid-edge-lnn' and meta['version'] == 1
    back = load_model(tmp_path / 'copy.npz')
    assert back.hyper == m.hyper
    np.testing.assert_array_equal(_run(back, case), _run(m, case))
    np.testing.assert_array_equal(back.input_mean, m.input_mean)
    np.testing.assert_array_equal(back.input_std, m.input_std)
    assert back.input_names == m.input_names and back.output_names == m.output_names


def test_ncps_import_renames_backbone_after_dropout() -> None:
    """ncps puts a Dropout after backbone layers 2..: its third Linear is index 5, ours index 4."""
    raw = np.load(DATA / 'cfc_proj_3layers.npz')
    assert 'rnn_cell.backbone.5.weight' in raw.files
    m = load_model(DATA / 'cfc_proj_3layers.npz')
    assert 'rnn_cell.backbone.4.weight' in m.params and 'rnn_cell.backbone.5.weight' not in m.params
    np.testing.assert_array_equal(np.asarray(m.params['rnn_cell.backbone.4.weight']),
                                  raw['rnn_cell.backbone.5.weight'])


def _copy(tmp_path: Path, case: str = 'cfc_default') -> Path:
    for ext in ('.npz', '.json'):
        shutil.copy(DATA / f'{case}{ext}', tmp_path / f'm{ext}')
    return tmp_path / 'm.npz'


def _edit_tensors(path: Path, fn: Callable[[Dict[str, np.ndarray]], None]) -> None:
    with np.load(path) as z:
        t = {k: z[k] for k in z.files}
    fn(t)
    np.savez(path, **t)


def _edit_json(path: Path, fn: Callable[[Dict[str, Any]], None]) -> None:
    js = path.with_suffix('.json')
    meta = json.loads(js.read_text())
    fn(meta)
    js.write_text(json.dumps(meta))


def _error(path: Path) -> str:
    with pytest.raises(ModelError) as info:
        load_model(path)
    msg = str(info.value)
    assert '\n' not in msg
    return msg


def test_missing_tensor(tmp_path: Path) -> None:
    p = _copy(tmp_path)
    _edit_tensors(p, lambda t: t.pop('rnn_cell.time_a.weight'))
    msg = _error(p)
    assert msg.startswith(f'{p}: ') and "missing tensor 'rnn_cell.time_a.weight'" in msg


def test_wrong_shape_says_expected_and_got(tmp_path: Path) -> None:
    p = _copy(tmp_path)
    _edit_tensors(p, lambda t: t.update({'rnn_cell.ff2.weight': np.zeros((8, 15), np.float32)}))
    msg = _error(p)
    assert "'rnn_cell.ff2.weight'" in msg and 'expected (8, 16), got (8, 15)' in msg


def test_nan_tensor_rejected(tmp_path: Path) -> None:
    p = _copy(tmp_path, 'ltc_constrained')

    def poison(t: Dict[str, np.ndarray]) -> None:
        t['rnn_cell.gleak'][3] = np.nan
        t['rnn_cell.gleak'][5] = np.inf
    _edit_tensors(p, poison)
    msg = _error(p)
    assert "tensor 'rnn_cell.gleak': 2 NaN/Inf values" in msg


def test_unknown_mode(tmp_path: Path) -> None:
    p = _copy(tmp_path)
    _edit_json(p, lambda m: m.update(mode='gated'))
    msg = _error(p)
    assert msg.startswith(f"{p.with_suffix('.json')}: ") and "key 'mode'" in msg and "'gated'" in msg


def test_unknown_activation_and_format(tmp_path: Path) -> None:
    p = _copy(tmp_path)
    _edit_json(p, lambda m: m.update(activation='swish'))
    assert "key 'activation': unknown value 'swish'" in _error(p)
    _edit_json(p, lambda m: m.update(format='keras'))
    assert "key 'format': unknown format 'keras'" in _error(p)


def test_mixed_memory_is_rejected(tmp_path: Path) -> None:
    p = _copy(tmp_path)
    _edit_json(p, lambda m: m.update(mixed_memory=True))
    assert "'mixed_memory'" in _error(p) and 'not supported' in _error(p)


def test_corrupt_and_missing_files(tmp_path: Path) -> None:
    p = _copy(tmp_path)
    p.write_bytes(b'PK\x03\x04 this is not a zip archive')
    assert 'unreadable or corrupt tensor file' in _error(p)
    p.unlink()
    assert _error(p) == f'{p}: tensor file not found'
    (tmp_path / 'other').mkdir()
    q = _copy(tmp_path / 'other')
    q.with_suffix('.json').unlink()
    assert f"{q.with_suffix('.json')}: hyperparameter JSON not found" in _error(q)
    q.with_suffix('.json').write_text('{"format": ')
    assert 'not valid JSON' in _error(q)
    assert 'must end in .npz or .json' in _error(tmp_path / 'model.pt')


def test_unexpected_tensor_names_it(tmp_path: Path) -> None:
    """E.g. an LSTM from mixed_memory, or weights of another architecture than the JSON says."""
    p = _copy(tmp_path)
    _edit_tensors(p, lambda t: t.update({'lstm.input_map.weight': np.zeros((4, 4), np.float32)}))
    assert "unexpected tensor 'lstm.input_map.weight'" in _error(p)


def test_bad_input_stats(tmp_path: Path) -> None:
    p = _copy(tmp_path)
    _edit_json(p, lambda m: m.update(input_std=[1.0, 1.0, 0.0, 1.0, 1.0]))
    assert "key 'input_std'" in _error(p)
    _edit_json(p, lambda m: m.update(input_std=None, input_names=['a', 'b']))
    assert "key 'input_names': must be a list of 5 strings" in _error(p)


def test_our_format_version_checked(tmp_path: Path) -> None:
    m = load_model(DATA / 'cfc_default.npz')
    save_model(m, tmp_path / 'ours.npz')
    _edit_json(tmp_path / 'ours.npz', lambda meta: meta.update(version=7))
    assert "key 'version': unsupported version 7" in _error(tmp_path / 'ours.npz')
    _edit_json(tmp_path / 'ours.npz', lambda meta: meta.update(version=1, hyper={
        **meta['hyper'], 'units': 9}))
    assert "'rnn_cell.backbone.0.weight': wrong shape, expected (16, 14), got (16, 13)" \
        in _error(tmp_path / 'ours.npz')


@pytest.mark.parametrize('case', ['cfc_proj_3layers', 'cfc_pure', 'cfc_wired_ncp', 'ltc_unconstrained',
                                  'ltc_wired_ncp'])
def test_the_packed_step_gives_the_reference_numbers_and_one_program_serves_an_architecture(
        case: str) -> None:
    """What the controller steps (`Model.packed_step()`): the numbers of `Model.step` with the
    weights of the model it came from, and one jitted function for every model of the same
    architecture (a swap to retrained weights compiles nothing); another architecture gets its
    own."""
    a = load_model(DATA / f'{case}.json')
    b = Model(a.hyper, {k: np.asarray(v) * np.float32(1.01) for k, v in a.params.items()})
    io = np.load(DATA / f'{case}_io.npz')
    xs, dts = io['inputs'][:5], io['timespans'][:5]
    outs = {}
    for label, m in (('a', a), ('b', b)):
        step, packed = m.packed_step()
        h = h_ref = m.init_state()
        ys = []
        for x, dt in zip(xs, dts):
            h, y = step(packed, h, x, np.float32(dt))
            h_ref, y_ref = m.step(m.params, h_ref, jnp.asarray(x), jnp.asarray(dt, jnp.float32))
            np.testing.assert_allclose(np.asarray(y), np.asarray(y_ref), rtol=1e-5, atol=1e-6)
            ys.append(np.asarray(y))
        outs[label] = np.stack(ys)
    assert a.packed_step()[0] is b.packed_step()[0]
    assert not np.allclose(outs['a'], outs['b'])          # b's own weights, not a's program's
    other = load_model(DATA / ('cfc_pure.json' if case != 'cfc_pure' else
                               'ltc_unconstrained.json'))
    assert other.packed_step()[0] is not a.packed_step()[0]
