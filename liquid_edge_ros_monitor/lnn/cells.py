"""CfC and LTC cells in pure JAX, numerically matching the ncps torch cells users train with.

Parameters are a flat dict keyed by the ncps torch ``state_dict()`` names (``rnn_cell.ff1.weight``,
``fc.bias``, ``rnn_cell.gleak`` ...), so a trained ncps model's tensors are used as they are and our
own files keep the same names. The structure (mode, layers, mappings) lives in ``hyper``, a plain dict
closed over when a step is built, so the jitted functions see fixed shapes and no Python branching.

Everything is unbatched (h [state_size], x [n_inputs], dt a scalar): the node runs one robot, batch 1,
which is also the only batch size at which the ncps torch CfC wrapper handles timespans correctly
(ncps #81/#83).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike
import numpy as np

Params = Dict[str, jax.Array]
StepFn = Callable[[Params, jax.Array, jax.Array, jax.Array], Tuple[jax.Array, jax.Array]]
#: xs and dts may be numpy arrays (lnn.run reads them from .npy files): the scan takes both.
SeqFn = Callable[[Params, jax.Array, ArrayLike, ArrayLike], Tuple[jax.Array, jax.Array]]

CFC_MODES = ('default', 'no_gate', 'pure')
LTC_MAPPINGS = ('affine', 'linear', None)


def lecun_tanh(a: jax.Array) -> jax.Array:
    """The CfC default backbone activation, with the constants ncps uses (1.7159, 0.666)."""
    return 1.7159 * jnp.tanh(0.666 * a)


ACTIVATIONS: Dict[str, Callable[[jax.Array], jax.Array]] = {
    'lecun_tanh': lecun_tanh,
    'silu': jax.nn.silu,
    'relu': jax.nn.relu,
    'tanh': jnp.tanh,
    # torch.nn.GELU() defaults to the exact (erf) form, not the tanh approximation.
    'gelu': lambda a: jax.nn.gelu(a, approximate=False),
}


def cfc_layer_prefixes(hyper: Mapping[str, Any]) -> List[str]:
    """Tensor-name prefixes of the CfC layers: one for a plain CfC, one per layer for a wired one."""
    sizes = hyper.get('layer_sizes')
    if sizes is None:
        return ['rnn_cell.']
    return [f'rnn_cell.layer_{i}.' for i in range(len(sizes))]


def backbone_names(hyper: Mapping[str, Any]) -> List[str]:
    """Names of the backbone Linear layers, canonical Sequential indices 0, 2, 4 ... (no dropout)."""
    if hyper.get('layer_sizes') is not None:
        return []
    return [f'rnn_cell.backbone.{2 * i}' for i in range(int(hyper['backbone_layers']))]


def _linear(p: Params, name: str, z: jax.Array) -> jax.Array:
    return p[name + '.weight'] @ z + p[name + '.bias']


def _cfc_layer(p: Params, prefix: str, backbone: Sequence[str], act: Callable[[jax.Array], jax.Array],
               mode: str, x: jax.Array, h: jax.Array, ts: jax.Array) -> jax.Array:
    """One CfCCell.forward: backbone on [x, h], then the closed-form update of the mode."""
    z = jnp.concatenate([x, h])
    for name in backbone:
        z = act(_linear(p, name, z))
    mask = p.get(prefix + 'sparsity_mask')

    def head(name: str, masked: bool) -> jax.Array:
        w = p[prefix + name + '.weight']
        if masked and mask is not None:
            w = w * mask
        return w @ z + p[prefix + name + '.bias']

    ff1 = head('ff1', True)
    if mode == 'pure':
        a = p[prefix + 'A'].reshape(-1)
        w_tau = p[prefix + 'w_tau'].reshape(-1)
        return -a * jnp.exp(-ts * (jnp.abs(w_tau) + jnp.abs(ff1))) * ff1 + a
    ff1 = jnp.tanh(ff1)
    ff2 = jnp.tanh(head('ff2', True))
    t_a = head('time_a', False)
    t_b = head('time_b', False)
    gate = jax.nn.sigmoid(t_a * ts + t_b)
    if mode == 'no_gate':
        return ff1 + gate * ff2
    return ff1 * (1.0 - gate) + gate * ff2


def make_cfc_step(hyper: Mapping[str, Any]) -> StepFn:
    """The un-jitted CfC wrapper step: every layer, then the optional ``fc`` projection."""
    mode = hyper['mode']
    if mode not in CFC_MODES:
        raise ValueError(f"unknown CfC mode '{mode}' (expected one of {', '.join(CFC_MODES)})")
    act = ACTIVATIONS[hyper.get('backbone_activation', 'lecun_tanh')]
    prefixes = cfc_layer_prefixes(hyper)
    sizes = hyper.get('layer_sizes') or [int(hyper['units'])]
    bounds = np.cumsum([0] + list(sizes)).tolist()
    backbone = backbone_names(hyper)
    project = hyper.get('proj_size') is not None

    def step(p: Params, h: jax.Array, x: jax.Array, dt: jax.Array) -> Tuple[jax.Array, jax.Array]:
        inputs, parts = x, []
        for i, prefix in enumerate(prefixes):
            inputs = _cfc_layer(p, prefix, backbone, act, mode, inputs,
                                h[bounds[i]:bounds[i + 1]], dt)
            parts.append(inputs)
        h_new = parts[0] if len(parts) == 1 else jnp.concatenate(parts)
        y = _linear(p, 'fc', inputs) if project else inputs
        return h_new, y

    return step


def make_ltc_step(hyper: Mapping[str, Any]) -> StepFn:
    """The un-jitted LTC wrapper step: input mapping, fused semi-implicit ODE unfolds, motor readout."""
    unfolds = int(hyper.get('ode_unfolds', 6))
    eps = float(hyper.get('epsilon', 1e-8))
    motor = int(hyper['motor_size'])
    in_map, out_map = hyper.get('input_mapping', 'affine'), hyper.get('output_mapping', 'affine')
    pos: Callable[[jax.Array], jax.Array] = (
        jax.nn.softplus if hyper.get('implicit_param_constraints', True) else (lambda a: a))
    c = 'rnn_cell.'

    def step(p: Params, h: jax.Array, x: jax.Array, dt: jax.Array) -> Tuple[jax.Array, jax.Array]:
        if in_map in ('affine', 'linear'):
            x = x * p[c + 'input_w']
        if in_map == 'affine':
            x = x + p[c + 'input_b']
        s_act = pos(p[c + 'sensory_w']) * jax.nn.sigmoid(
            p[c + 'sensory_sigma'] * (x[:, None] - p[c + 'sensory_mu']))
        s_act = s_act * p[c + 'sensory_sparsity_mask']
        num_s = jnp.sum(s_act * p[c + 'sensory_erev'], axis=0)
        den_s = jnp.sum(s_act, axis=0)
        cm_t = pos(p[c + 'cm']) / (dt / unfolds)
        w = pos(p[c + 'w'])
        gleak = pos(p[c + 'gleak'])
        leak = gleak * p[c + 'vleak']
        mask, sigma, mu, erev = (p[c + 'sparsity_mask'], p[c + 'sigma'], p[c + 'mu'],
                                 p[c + 'erev'])
        v = h
        for _ in range(unfolds):
            w_act = w * jax.nn.sigmoid(sigma * (v[:, None] - mu)) * mask
            num = jnp.sum(w_act * erev, axis=0) + num_s
            den = jnp.sum(w_act, axis=0) + den_s
            v = (cm_t * v + leak + num) / (cm_t + gleak + den + eps)
        y = v[:motor]
        if out_map in ('affine', 'linear'):
            y = y * p[c + 'output_w']
        if out_map == 'affine':
            y = y + p[c + 'output_b']
        return v, y

    return step


def make_step(hyper: Mapping[str, Any]) -> StepFn:
    """The un-jitted step ``(params, h, x, dt) -> (h_new, y)`` for ``hyper['cell']``."""
    cell = hyper['cell']
    if cell == 'cfc':
        return make_cfc_step(hyper)
    if cell == 'ltc':
        return make_ltc_step(hyper)
    raise ValueError(f"unknown cell '{cell}' (expected 'cfc' or 'ltc')")


def make_sequence(step: StepFn) -> SeqFn:
    """``(params, h0, xs[T, n], dts[T]) -> (hT, ys[T, m])`` as one ``lax.scan`` over ``step``."""

    def sequence(p: Params, h0: jax.Array, xs: ArrayLike,
                 dts: ArrayLike) -> Tuple[jax.Array, jax.Array]:
        def body(h: jax.Array, xd: Tuple[jax.Array, jax.Array]) -> Tuple[jax.Array, jax.Array]:
            return step(p, h, xd[0], xd[1])
        return jax.lax.scan(body, h0, (jnp.asarray(xs), jnp.asarray(dts)))

    return sequence


def timespans_from_stamps(stamps: Sequence[float], first: Optional[float] = None) -> np.ndarray:
    """Per-step elapsed time (float32 seconds) from message stamps in seconds.

    Step i gets ``stamps[i] - stamps[i-1]``; step 0 has no predecessor and gets ``first`` (default:
    the next gap, or 1.0 for a single stamp, which is the ncps default timespan)."""
    s = np.asarray(stamps, dtype=np.float64)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f'stamps must be a non-empty 1-D sequence, got shape {s.shape}')
    d = np.diff(s)
    if np.any(d < 0):
        raise ValueError(f'stamps must not decrease (first decrease at index {int(np.argmax(d < 0)) + 1})')
    head = first if first is not None else (float(d[0]) if d.size else 1.0)
    return np.concatenate([[head], d]).astype(np.float32)
