"""`Model`: a loaded CfC or LTC with its jitted step and scan, and what the node reports about it."""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from .cells import Params, SeqFn, StepFn, make_sequence, make_step
from .packed import PackedStepFn, pack, packed_step
from .weights import ModelError, expected_shapes, output_size, read_model_files, write_model_files


class Model:
    """A liquid network ready to run: parameters, hyperparameters and two jitted functions.

    ``step(params, h, x, dt) -> (h_new, y)`` advances one input (h [state_size], x [n_inputs],
    dt a float32 scalar, seconds or whatever unit the model was trained with);
    ``sequence(params, h0, xs[T, n], dts[T]) -> (hT, ys[T, m])`` is the same as one ``lax.scan``.
    The parameters are passed explicitly so the functions stay pure and are compiled once.
    """

    def __init__(self, hyper: Mapping[str, Any], params: Mapping[str, Any],
                 input_mean: Optional[np.ndarray] = None, input_std: Optional[np.ndarray] = None,
                 input_names: Optional[List[str]] = None, output_names: Optional[List[str]] = None,
                 training: Optional[Dict[str, Any]] = None) -> None:
        self.hyper: Dict[str, Any] = dict(hyper)
        self.cell: str = self.hyper['cell']
        self.mode: Optional[str] = self.hyper.get('mode')
        self.n_inputs: int = int(self.hyper['n_inputs'])
        self.units: int = int(self.hyper['units'])
        self.state_size: int = self.units
        self.n_outputs: int = output_size(self.hyper)
        self.params: Params = {k: jnp.asarray(v, dtype=jnp.float32) for k, v in params.items()}
        self.input_mean = input_mean
        self.input_std = input_std
        self.input_names = input_names
        self.output_names = output_names
        self.training = training
        raw: StepFn = make_step(self.hyper)
        self._raw_step = raw
        self.step: StepFn = jax.jit(raw)
        self.sequence: SeqFn = jax.jit(make_sequence(raw))

    def bound_step(self) -> Callable[[Any, Any, Any], Any]:
        """``step(h, x, dt) -> (h_new, y)`` with these parameters compiled in as constants.

        The call no longer flattens and checks the parameter pytree (a dict of tensors) each
        time, which is a third of a small cell's dispatch cost on the CPU; but every set of
        weights is a program of its own to compile. The controller uses `packed_step()` (as
        fast within 1 us, compiled once per architecture); this stays as the bench's baseline
        (bench/lnn_step.py `bound`)."""
        raw, params = self._raw_step, self.params
        return jax.jit(lambda h, x, dt: raw(params, h, x, dt))

    def packed_step(self) -> Tuple[PackedStepFn, jax.Array]:
        """``(step, packed)`` for a control loop: ``step(packed, h, x, dt) -> (h_new, y)``, the
        same numbers as `step(self.params, h, x, dt)`. The step is shared by every model of this
        architecture in the process (`packed.py`): a model with new weights and the same sizes
        runs a program already compiled, so swapping it in compiles nothing."""
        return packed_step(self.hyper, self.params), pack(self.params)

    def init_state(self) -> jax.Array:
        """The zero state ncps starts from when no hx is given (a device copy: `jnp.zeros`
        compiles a program per new size, 30 ms beside the control loop at a model swap)."""
        return jax.device_put(np.zeros((self.state_size,), dtype=np.float32))

    def macs_per_step(self) -> int:
        """Multiply-accumulates of one step, for a MAC-count energy model.

        Counts every weight multiply of the matrix products (one MAC each). For the LTC, each
        synapse costs 3 MACs per evaluation (sigma*(v-mu), w*sigmoid, w_act*erev), sensory synapses
        once per step and recurrent ones once per ODE unfold. Elementwise activations are not counted."""
        h = self.hyper
        if self.cell == 'ltc':
            n, u = self.n_inputs, self.units
            return 3 * n * u + int(h['ode_unfolds']) * (3 * u * u + 3 * u)
        shapes = expected_shapes(h)
        return int(sum(s[0] * s[1] for name, s in shapes.items()
                       if name.endswith('.weight') and len(s) == 2))

    def describe(self) -> str:
        """One line: cell, mode, sizes, parameter count and MACs per step."""
        n_params = int(sum(np.size(v) for k, v in self.params.items() if 'sparsity_mask' not in k))
        kind = self.cell.upper() if self.cell == 'ltc' else f'CfC/{self.mode}'
        return (f'{kind} {self.n_inputs} in -> {self.units} units -> {self.n_outputs} out, '
                f'{n_params} parameters, {self.macs_per_step()} MACs/step')

    def tensors(self) -> Dict[str, np.ndarray]:
        return {k: np.asarray(v, dtype=np.float32) for k, v in self.params.items()}


def load_model(path: Any) -> Model:
    """Load our format or an ncps-torch import from the ``.npz`` (or ``.json``) path.

    Raises ModelError (one line naming the file and the tensor or key) for any bad file."""
    return build_model(path, read_model_files(path))


def build_model(path: Any, m: Dict[str, Any]) -> Model:
    """The `Model` of files already read and checked by `read_model_files(path)` (this part puts
    the tensors on the device and defines the jitted functions; nothing is compiled yet)."""
    try:
        return Model(m['hyper'], m['tensors'], m['input_mean'], m['input_std'], m['input_names'],
                     m['output_names'], m['training'])
    except ValueError as exc:  # an unknown mode or cell that slipped past the checks
        raise ModelError(path, str(exc)) from None


def save_model(model: Model, path: Any) -> None:
    """Write ``model`` in our format as ``NAME.npz`` + ``NAME.json`` (either path names the pair)."""
    write_model_files(path, model.hyper, model.tensors(), {
        'input_mean': model.input_mean, 'input_std': model.input_std,
        'input_names': model.input_names, 'output_names': model.output_names,
        'training': model.training})
