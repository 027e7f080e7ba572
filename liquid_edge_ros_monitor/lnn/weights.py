"""Model files: reading, checking and writing a tensor ``.npz`` with its ``.json`` of hyperparameters.

Two JSON flavours are read; the ``.npz`` holds the same tensor names in both (ncps torch
``state_dict()`` names), so a model trained with ncps is used without converting its weights.

Our format (``"format": "liquid-edge-lnn"``, ``"version": 1``)::

    {"format": "liquid-edge-lnn", "version": 1,
     "hyper": {"cell": "cfc", "mode": "default", "n_inputs": 3, "units": 24, "proj_size": 2,
               "backbone_activation": "lecun_tanh", "backbone_units": 32, "backbone_layers": 1,
               "layer_sizes": null},
     "input_mean": [...], "input_std": [...], "input_names": [...], "output_names": [...],
     "training": {...free-form facts about how it was trained...}}

    LTC hyper: {"cell": "ltc", "n_inputs", "units", "motor_size", "input_mapping", "output_mapping",
                "ode_unfolds", "epsilon", "implicit_param_constraints"}

An ncps import (``"format": "ncps-torch"``): the wrapper's class and constructor arguments, under
their ncps names, with the ncps defaults for any left out::

    {"format": "ncps-torch", "class": "CfC", "input_size": 8, "units": 32, "proj_size": null,
     "mode": "default", "activation": "lecun_tanh", "backbone_units": 128, "backbone_layers": 1,
     "backbone_dropout": 0.0, "mixed_memory": false}
    {"format": "ncps-torch", "class": "LTC", "input_size": 8, "units": 32, "input_mapping": "affine",
     "output_mapping": "affine", "ode_unfolds": 6, "epsilon": 1e-8,
     "implicit_param_constraints": true, "mixed_memory": false}

``units`` may instead be a wiring, exactly as ncps' ``wiring.get_config()`` writes it for
FullyConnected, Random, NCP or AutoNCP (its neuron and motor counts are read: ``units`` and
``output_dim`` / ``output_size``, or NCP's neuron lists; the adjacency comes from the sparsity
masks in the state dict, since NCP's config holds no usable seed). For a wired
CfC the layer sizes are read from the ``rnn_cell.layer_<i>.ff1.weight`` shapes. The same optional
``input_mean`` / ``input_std`` / ``input_names`` / ``output_names`` keys are read from both flavours.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Tuple

import numpy as np

from .cells import ACTIVATIONS, CFC_MODES, LTC_MAPPINGS, backbone_names, cfc_layer_prefixes

FORMAT = 'liquid-edge-lnn'
VERSION = 1
NCPS_FORMAT = 'ncps-torch'

Shapes = Dict[str, Tuple[int, ...]]


class ModelError(ValueError):
    """A model file is unusable; the message is one line naming the file and the tensor or key."""

    def __init__(self, path: Any, problem: str) -> None:
        super().__init__(f'{path}: {problem}')
        self.path = str(path)


def file_pair(path: Any) -> Tuple[Path, Path]:
    """The (.npz, .json) pair for either of the two paths."""
    p = Path(path)
    if p.suffix not in ('.npz', '.json'):
        raise ModelError(p, "model path must end in .npz or .json")
    return p.with_suffix('.npz'), p.with_suffix('.json')


# --- hyperparameters -------------------------------------------------------------------------

def _int(path: Path, d: Mapping[str, Any], key: str, default: Any = ..., lo: int = 1) -> Any:
    v = d.get(key, default)
    if v is ...:
        raise ModelError(path, f"missing key '{key}'")
    if v is None and default is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ModelError(path, f"key '{key}': must be an integer >= {lo}, got {v!r}")
    return v


def _choice(path: Path, d: Mapping[str, Any], key: str, options: Tuple[Any, ...], default: Any) -> Any:
    v = d.get(key, default)
    if v not in options:
        names = ', '.join(repr(o) if o is not None else 'null' for o in options)
        raise ModelError(path, f"key '{key}': unknown value {v!r} (expected one of {names})")
    return v


def _bool(path: Path, d: Mapping[str, Any], key: str, default: bool) -> bool:
    v = d.get(key, default)
    if not isinstance(v, bool):
        raise ModelError(path, f"key '{key}': must be true or false, got {v!r}")
    return v


def check_hyper(path: Path, h: Any) -> Dict[str, Any]:
    """Validate our ``hyper`` dict (anything read from JSON), returning a normalised copy
    (every key present)."""
    if not isinstance(h, Mapping):
        raise ModelError(path, "key 'hyper': must be an object")
    cell = _choice(path, h, 'cell', ('cfc', 'ltc'), None)
    out: Dict[str, Any] = {'cell': cell, 'n_inputs': _int(path, h, 'n_inputs'),
                           'units': _int(path, h, 'units')}
    if cell == 'cfc':
        out['mode'] = _choice(path, h, 'mode', CFC_MODES, 'default')
        out['backbone_activation'] = _choice(path, h, 'backbone_activation', tuple(ACTIVATIONS),
                                             'lecun_tanh')
        out['backbone_units'] = _int(path, h, 'backbone_units', 128)
        out['backbone_layers'] = _int(path, h, 'backbone_layers', 1, lo=0)
        out['proj_size'] = _int(path, h, 'proj_size', None)
        sizes = h.get('layer_sizes')
        if sizes is not None:
            if (not isinstance(sizes, list) or not sizes
                    or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes)):
                raise ModelError(path, f"key 'layer_sizes': must be a list of positive integers, got {sizes!r}")
            if sum(sizes) != out['units']:
                raise ModelError(path, f"key 'layer_sizes': sums to {sum(sizes)}, but 'units' is {out['units']}")
            out['backbone_layers'] = 0
        out['layer_sizes'] = sizes
    else:
        out['mode'] = None
        out['motor_size'] = _int(path, h, 'motor_size', out['units'])
        if out['motor_size'] > out['units']:
            raise ModelError(path, f"key 'motor_size': {out['motor_size']} exceeds units {out['units']}")
        out['input_mapping'] = _choice(path, h, 'input_mapping', LTC_MAPPINGS, 'affine')
        out['output_mapping'] = _choice(path, h, 'output_mapping', LTC_MAPPINGS, 'affine')
        out['ode_unfolds'] = _int(path, h, 'ode_unfolds', 6)
        eps = h.get('epsilon', 1e-8)
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps >= 0:
            raise ModelError(path, f"key 'epsilon': must be a number >= 0, got {eps!r}")
        out['epsilon'] = float(eps)
        out['implicit_param_constraints'] = _bool(path, h, 'implicit_param_constraints', True)
    return out


def _neuron_count(path: Path, config: Mapping[str, Any], key: str) -> int:
    """An NCP layer as its get_config() writes it (a list of neuron ids), or a count."""
    v = config.get(key)
    if isinstance(v, (list, tuple)):
        if not v:
            raise ModelError(path, f"key 'units.{key}': an NCP layer needs at least one neuron")
        return len(v)
    return _int(path, config, key)


def _ncps_units(path: Path, meta: Mapping[str, Any]) -> Tuple[int, Optional[int], bool]:
    """(units, motor neurons or None, wired) from the ncps ``units`` argument.

    A wiring is read as its ``get_config()`` writes it (ncps 1.0.1): FullyConnected and Random
    give ``units`` and ``output_dim``; AutoNCP gives ``units`` and ``output_size``; NCP gives its
    ``inter_neurons``, ``command_neurons`` and ``motor_neurons`` (no ``units``).
    """
    units = meta.get('units')
    if not isinstance(units, Mapping):
        return _int(path, meta, 'units'), None, False
    if 'motor_neurons' in units:
        layers = ('inter_neurons', 'command_neurons', 'motor_neurons')
        counts = [_neuron_count(path, units, k) for k in layers]
        return sum(counts), counts[-1], True
    n = _int(path, units, 'units')
    key = next((k for k in ('output_dim', 'output_size') if units.get(k) is not None), None)
    if key is None:
        raise ModelError(path, "key 'units': a wiring config needs 'output_dim' (FullyConnected, "
                               "Random), 'output_size' (AutoNCP) or 'motor_neurons' (NCP)")
    out = _int(path, units, key)
    if out > n:
        raise ModelError(path, f"key 'units.{key}': {out} motor neurons exceed units {n}")
    return n, out, True


def hyper_from_ncps(path: Path, meta: Mapping[str, Any], tensors: Mapping[str, np.ndarray]) -> Dict[str, Any]:
    """Our hyper dict from an ncps wrapper's constructor arguments (ncps defaults for absent keys)."""
    if meta.get('mixed_memory', False) is not False:
        raise ModelError(path, "key 'mixed_memory': mixed_memory=True (the LSTM memory cell) is not supported")
    cls = _choice(path, meta, 'class', ('CfC', 'LTC'), None)
    n_inputs = _int(path, meta, 'input_size')
    units, output_dim, wired = _ncps_units(path, meta)
    if cls == 'LTC':
        return check_hyper(path, {
            'cell': 'ltc', 'n_inputs': n_inputs, 'units': units,
            'motor_size': output_dim if output_dim is not None else units,
            'input_mapping': meta.get('input_mapping', 'affine'),
            'output_mapping': meta.get('output_mapping', 'affine'),
            'ode_unfolds': meta.get('ode_unfolds', 6), 'epsilon': meta.get('epsilon', 1e-8),
            'implicit_param_constraints': meta.get('implicit_param_constraints', True)})
    h: Dict[str, Any] = {'cell': 'cfc', 'n_inputs': n_inputs, 'units': units,
                         'mode': meta.get('mode', 'default'),
                         'backbone_activation': _choice(path, meta, 'activation', tuple(ACTIVATIONS),
                                                        'lecun_tanh'),
                         'proj_size': meta.get('proj_size')}
    if wired:
        sizes: List[int] = []
        while f'rnn_cell.layer_{len(sizes)}.ff1.weight' in tensors:
            shape = tensors[f'rnn_cell.layer_{len(sizes)}.ff1.weight'].shape
            sizes.append(int(shape[0]) if len(shape) == 2 else 0)
        if not sizes:
            raise ModelError(path.with_suffix('.npz'), "missing tensor 'rnn_cell.layer_0.ff1.weight'")
        h.update(layer_sizes=sizes, backbone_units=1, backbone_layers=0)
    else:
        h.update(backbone_units=meta.get('backbone_units') or 128,
                 backbone_layers=1 if meta.get('backbone_layers') is None else meta['backbone_layers'])
    return check_hyper(path, h)


def ncps_tensor_renames(meta: Mapping[str, Any], hyper: Mapping[str, Any]) -> Dict[str, str]:
    """ncps name -> our canonical name, where they differ: the backbone Sequential's indices shift
    by one per Dropout module (inserted after layers 2.. when backbone_dropout > 0)."""
    if hyper['cell'] != 'cfc' or hyper.get('layer_sizes') is not None:
        return {}
    drop = 1 if (meta.get('backbone_dropout') or 0.0) > 0.0 else 0
    renames = {}
    for i in range(1, int(hyper['backbone_layers'])):
        src = 2 + (i - 1) * (2 + drop)
        for part in ('weight', 'bias'):
            renames[f'rnn_cell.backbone.{src}.{part}'] = f'rnn_cell.backbone.{2 * i}.{part}'
    return renames


# --- tensors ---------------------------------------------------------------------------------

def expected_shapes(hyper: Mapping[str, Any]) -> Shapes:
    """Every tensor the model needs, by name, with its shape."""
    n, u = int(hyper['n_inputs']), int(hyper['units'])
    s: Shapes = {}
    if hyper['cell'] == 'ltc':
        c = 'rnn_cell.'
        for k in ('gleak', 'vleak', 'cm'):
            s[c + k] = (u,)
        for k in ('sigma', 'mu', 'w', 'erev', 'sparsity_mask'):
            s[c + k] = (u, u)
        for k in ('sensory_sigma', 'sensory_mu', 'sensory_w', 'sensory_erev', 'sensory_sparsity_mask'):
            s[c + k] = (n, u)
        m = int(hyper['motor_size'])
        for side, size in (('input', n), ('output', m)):
            mapping = hyper[side + '_mapping']
            if mapping in ('affine', 'linear'):
                s[f'{c}{side}_w'] = (size,)
            if mapping == 'affine':
                s[f'{c}{side}_b'] = (size,)
        return s
    sizes = hyper.get('layer_sizes') or [u]
    wired = hyper.get('layer_sizes') is not None
    fan_in = n
    for prefix, size in zip(cfc_layer_prefixes(hyper), sizes):
        cat = fan_in + size
        if not wired:
            bu = int(hyper['backbone_units'])
            for i, name in enumerate(backbone_names(hyper)):
                s[name + '.weight'] = (bu, cat if i == 0 else bu)
                s[name + '.bias'] = (bu,)
            if hyper['backbone_layers'] > 0:
                cat = bu
        heads = ('ff1',) if hyper['mode'] == 'pure' else ('ff1', 'ff2', 'time_a', 'time_b')
        for head in heads:
            s[f'{prefix}{head}.weight'] = (size, cat)
            s[f'{prefix}{head}.bias'] = (size,)
        if hyper['mode'] == 'pure':
            s[prefix + 'w_tau'] = (1, size)
            s[prefix + 'A'] = (1, size)
        if wired:
            s[prefix + 'sparsity_mask'] = (size, cat)
        fan_in = size
    if hyper.get('proj_size') is not None:
        s['fc.weight'] = (int(hyper['proj_size']), sizes[-1])
        s['fc.bias'] = (int(hyper['proj_size']),)
    return s


def read_npz(path: Path) -> Dict[str, np.ndarray]:
    """All arrays of an .npz, or a one-line ModelError for a missing, unreadable or corrupt file."""
    if not path.is_file():
        raise ModelError(path, 'tensor file not found')
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(path, f'unreadable or corrupt tensor file ({text})') from None


def read_json(path: Path) -> Dict[str, Any]:
    if not path.is_file():
        raise ModelError(path, 'hyperparameter JSON not found (it must lie beside the .npz)')
    try:
        meta = json.loads(path.read_text())
    except OSError as exc:
        raise ModelError(path, f'cannot read: {exc.strerror}') from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        line = f' at line {exc.lineno}' if isinstance(exc, json.JSONDecodeError) else ''
        raise ModelError(path, f'not valid JSON{line}') from None
    if not isinstance(meta, dict):
        raise ModelError(path, 'must hold a JSON object')
    return meta


class TensorHeader(NamedTuple):
    """A tensor's shape and dtype as its .npy header gives them, without its data."""

    shape: Tuple[int, ...]
    dtype: np.dtype


def read_npz_headers(path: Path) -> Dict[str, TensorHeader]:
    """Every tensor's name, shape and dtype from an .npz's member headers (no data is read, so a
    large model is inspected in milliseconds); a one-line ModelError for an unreadable file."""
    if not path.is_file():
        raise ModelError(path, 'tensor file not found')
    out: Dict[str, TensorHeader] = {}
    try:
        with zipfile.ZipFile(path) as z:
            for member in z.namelist():
                if not member.endswith('.npy'):
                    continue
                with z.open(member) as f:
                    version = np.lib.format.read_magic(f)
                    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                            else np.lib.format.read_array_header_2_0)
                    shape, _fortran, dtype = read(f)
                out[member[:-len('.npy')]] = TensorHeader(tuple(shape), dtype)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(path, f'unreadable or corrupt tensor file ({text})') from None
    return out


def check_tensor_layout(path: Path, tensors: Mapping[str, Any], shapes: Shapes) -> None:
    """Exactly the expected tensors, numeric, of the expected shapes (arrays or headers); a
    ModelError names the first bad one."""
    for name, shape in shapes.items():
        if name not in tensors:
            raise ModelError(path, f"missing tensor '{name}' (expected shape {shape})")
        a = tensors[name]
        if a.dtype.kind not in 'fiub':
            raise ModelError(path, f"tensor '{name}': dtype {a.dtype} is not numeric")
        if tuple(a.shape) != shape:
            raise ModelError(path, f"tensor '{name}': wrong shape, expected {shape}, got {tuple(a.shape)}")
    extra = sorted(set(tensors) - set(shapes))
    if extra:
        raise ModelError(path, f"unexpected tensor '{extra[0]}' (not used by this model's hyperparameters)")


def check_tensors(path: Path, tensors: Mapping[str, np.ndarray], shapes: Shapes) -> Dict[str, np.ndarray]:
    """float32 copies of exactly the expected tensors; a ModelError names the first bad one."""
    check_tensor_layout(path, tensors, shapes)
    out: Dict[str, np.ndarray] = {}
    for name in shapes:
        a = tensors[name].astype(np.float32)
        if not np.all(np.isfinite(a)):
            bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
            raise ModelError(path, f"tensor '{name}': {bad} NaN/Inf value{'s' if bad != 1 else ''}")
        out[name] = a
    return out


def _vector(path: Path, meta: Mapping[str, Any], key: str, size: int, positive: bool = False
            ) -> Optional[np.ndarray]:
    v = meta.get(key)
    if v is None:
        return None
    try:
        a = np.asarray(v, dtype=np.float32)
    except (TypeError, ValueError):
        raise ModelError(path, f"key '{key}': must be a list of {size} numbers") from None
    if a.shape != (size,) or not np.all(np.isfinite(a)) or (positive and np.any(a <= 0)):
        what = 'positive ' if positive else ''
        raise ModelError(path, f"key '{key}': must be a list of {size} finite {what}numbers, got {v!r}")
    return a


def _names(path: Path, meta: Mapping[str, Any], key: str, size: int) -> Optional[List[str]]:
    v = meta.get(key)
    if v is None:
        return None
    if not isinstance(v, list) or len(v) != size or not all(isinstance(s, str) for s in v):
        raise ModelError(path, f"key '{key}': must be a list of {size} strings, got {v!r}")
    return list(v)


def read_model_files(path: Any) -> Dict[str, Any]:
    """Read and check a model's file pair; return its hyper, float32 tensors and optional extras."""
    npz, js = file_pair(path)
    meta = read_json(js)
    return _read(npz, js, meta, read_npz(npz), data=True)


def inspect_model_files(path: Any) -> Dict[str, Any]:
    """What `read_model_files` checks, from the JSON and the tensors' headers only: everything but
    the tensors' values (NaN/Inf), in milliseconds whatever the model's size. Its 'tensors' are
    `TensorHeader`s."""
    npz, js = file_pair(path)
    meta = read_json(js)
    return _read(npz, js, meta, read_npz_headers(npz), data=False)


def _read(npz: Path, js: Path, meta: Dict[str, Any], raw: Mapping[str, Any],
          data: bool) -> Dict[str, Any]:
    fmt = meta.get('format')
    if fmt == FORMAT:
        if meta.get('version') != VERSION:
            raise ModelError(js, f"key 'version': unsupported version {meta.get('version')!r} "
                                 f'(this build reads {VERSION})')
        hyper = check_hyper(js, meta.get('hyper'))
    elif fmt == NCPS_FORMAT:
        hyper = hyper_from_ncps(js, meta, raw)
        renames = ncps_tensor_renames(meta, hyper)
        raw = {renames.get(k, k): v for k, v in raw.items()}
    else:
        raise ModelError(js, f"key 'format': unknown format {fmt!r} (expected '{FORMAT}' or '{NCPS_FORMAT}')")
    if data:
        tensors: Mapping[str, Any] = check_tensors(npz, raw, expected_shapes(hyper))
    else:
        check_tensor_layout(npz, raw, expected_shapes(hyper))
        tensors = raw
    n_out = output_size(hyper)
    return {
        'hyper': hyper, 'tensors': tensors, 'source_format': fmt,
        'input_mean': _vector(js, meta, 'input_mean', hyper['n_inputs']),
        'input_std': _vector(js, meta, 'input_std', hyper['n_inputs'], positive=True),
        'input_names': _names(js, meta, 'input_names', hyper['n_inputs']),
        'output_names': _names(js, meta, 'output_names', n_out),
        'training': meta.get('training'),
    }


def output_size(hyper: Mapping[str, Any]) -> int:
    if hyper['cell'] == 'ltc':
        return int(hyper['motor_size'])
    if hyper.get('proj_size') is not None:
        return int(hyper['proj_size'])
    return int((hyper.get('layer_sizes') or [hyper['units']])[-1])


def write_model_files(path: Any, hyper: Mapping[str, Any], tensors: Mapping[str, np.ndarray],
                      extras: Mapping[str, Any]) -> Tuple[Path, Path]:
    """Write our format: ``NAME.npz`` (float32 tensors) and ``NAME.json`` side by side."""
    npz, js = file_pair(path)
    meta: Dict[str, Any] = {'format': FORMAT, 'version': VERSION, 'hyper': dict(hyper)}
    for key, value in extras.items():
        if value is not None:
            meta[key] = value.tolist() if isinstance(value, np.ndarray) else value
    npz.parent.mkdir(parents=True, exist_ok=True)
    with open(npz, 'wb') as f:
        arrays: Dict[str, Any] = {k: np.asarray(v, dtype=np.float32) for k, v in tensors.items()}
        np.savez(f, **arrays)
    js.write_text(json.dumps(meta, indent=1) + '\n')
    return npz, js

