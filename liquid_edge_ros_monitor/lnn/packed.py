"""One compiled step per architecture, shared by every model of it: the parameters packed into
one vector that the step takes as an argument.

Why: a model swap of retrained weights (same cell, same sizes) must not compile. A step with the
parameters compiled in as constants (`Model.bound_step()`) is a new XLA program for every set of
weights: 70-130 ms of compile on a 2-core VM, on XLA's own compile threads, which run at the
process's priority and took the control loop's core for 4 ms slices (bench/model_change.py: the
200 Hz loop one to two periods late at each swap). Passing the parameters as their dict instead
costs a dozen array arguments to check on every call (the demo model: 16.1 -> 21.1 us p50 per
step); one packed vector costs 16.1 -> 16.8 us, and slicing it inside the program is free (static
offsets). So the controller steps `step(packed, h, x, dt)`, and a model with the architecture of
one already compiled in this process reuses that program: swapping its weights is a device copy.
"""
from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any, Callable, Mapping, Tuple

import jax
import numpy as np

from .cells import Params, make_step

#: `step(packed, h, x, dt) -> (h_new, y)`.
PackedStepFn = Callable[[jax.Array, jax.Array, jax.Array, jax.Array], Tuple[jax.Array, jax.Array]]

#: Architectures whose step is kept (a controller holds its own step, so one evicted from here
#: keeps running; a swap back to it compiles again).
MAX_ARCHITECTURES = 8

_steps: 'OrderedDict[str, PackedStepFn]' = OrderedDict()
_lock = threading.Lock()          # the control thread and a model's preparation thread


def architecture_key(hyper: Mapping[str, Any], params: Mapping[str, Any]) -> str:
    """What makes two models run the same program: the hyperparameters and every tensor's name
    and shape (the weights' values are not part of it)."""
    shapes = sorted((name, tuple(int(d) for d in np.shape(v))) for name, v in params.items())
    return json.dumps([dict(hyper), shapes], sort_keys=True, default=str)


def _unpacker(params: Mapping[str, Any]) -> Callable[[jax.Array], Params]:
    layout = []
    offset = 0
    for name in sorted(params):
        shape = tuple(int(d) for d in np.shape(params[name]))
        size = int(np.prod(shape, dtype=np.int64))
        layout.append((name, offset, offset + size, shape))
        offset += size

    def unpack(packed: jax.Array) -> Params:
        return {name: packed[a:b].reshape(shape) for name, a, b, shape in layout}
    return unpack


def pack(params: Mapping[str, Any]) -> jax.Array:
    """The parameters as one float32 vector on the device, in the order the step unpacks them
    (sorted names, each tensor row-major). A device copy, no program: `jnp.asarray` compiled one
    for a vector of new length, beside the control loop."""
    return jax.device_put(np.concatenate(
        [np.asarray(params[name], dtype=np.float32).reshape(-1) for name in sorted(params)]))


def packed_step(hyper: Mapping[str, Any], params: Mapping[str, Any]) -> PackedStepFn:
    """The jitted `step(packed, h, x, dt)` of this architecture: the one already made in this
    process when there is one (its compiled program with it), else a new one."""
    key = architecture_key(hyper, params)
    with _lock:
        step = _steps.get(key)
        if step is not None:
            _steps.move_to_end(key)
            return step
        raw, unpack = make_step(hyper), _unpacker(params)
        step = jax.jit(lambda packed, h, x, dt: raw(unpack(packed), h, x, dt))
        _steps[key] = step
        while len(_steps) > MAX_ARCHITECTURES:
            _steps.popitem(last=False)
        return step



def is_compiled(hyper: Mapping[str, Any], params: Mapping[str, Any]) -> bool:
    """Whether this architecture already has a step here (its program compiled when first run)."""
    with _lock:
        return architecture_key(hyper, params) in _steps


def adopt(hyper: Mapping[str, Any], params: Mapping[str, Any], compiled: PackedStepFn) -> None:
    """Use `compiled` (a `jax.stages.Compiled` of this architecture's packed step, made
    elsewhere: `compile_apart.py`) as its step from now on."""
    key = architecture_key(hyper, params)
    with _lock:
        _steps[key] = compiled
        _steps.move_to_end(key)
        while len(_steps) > MAX_ARCHITECTURES:
            _steps.popitem(last=False)
