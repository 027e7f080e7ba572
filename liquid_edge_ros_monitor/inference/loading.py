"""Loading a model for the controller: read, check against the node's features and outputs,
compile and warm up (no ROS).

One function, so that a model can be made ready anywhere (at start-up before the subscription
exists, so the first message never waits for XLA; or on another thread while the old model keeps
running). A model that cannot be used raises one line: `ModelError` naming the tensor or file,
`ConfigError` naming the parameter it contradicts.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Optional, Union

from ..core.params import ConfigError
from ..instrument.model_info import ModelInfo
from .controller import Controller

_COMPILE_EVENT = '/jax/core/compile/backend_compile_duration'
_compilations = [0]
_listening = [False]


def compilations() -> int:
    """XLA compilations in this process so far (a recompilation after warm-up is a shape bug)."""
    return _compilations[0]


def _count_compilations() -> None:
    if _listening[0]:
        return
    import jax

    def on_event(event: str, duration_secs: float, **_kw: Union[str, int]) -> None:
        if event == _COMPILE_EVENT:
            _compilations[0] += 1
    jax.monitoring.register_event_duration_secs_listener(on_event)
    _listening[0] = True


def default_model_path() -> str:
    from ..core.share import share_dir
    return str(share_dir() / 'models' / 'imu_velocity.npz')


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to step: its controller (compiled, warm, state at zero) and what the monitor
    reports of it."""

    path: str
    model: Any
    controller: Controller
    info: ModelInfo
    warmup_s: float
    #: How its program came: 'already compiled' (its architecture runs here), 'compiled here',
    #: 'compiled by a child process', or 'compiled here (why the child failed)'.
    compiled_by: str = ''


def _start_jax() -> None:
    """JAX's settings, then its backends, which must start whole (`core.stop.shielded`)."""
    import jax

    from ..core.stop import shielded
    try:
        # Run each step on the calling thread: for a small cell, handing it to XLA's CPU
        # thread and waiting for the result costs more than the step (BENCHMARKS: profile).
        # Must precede the first computation; a JAX without the flag keeps async dispatch.
        jax.config.update('jax_cpu_enable_async_dispatch', False)
    except (AttributeError, KeyError, ValueError):
        pass
    with shielded():
        jax.devices()           # every backend's start (a no-op once started)


@dataclass(frozen=True)
class CheckedModel:
    """A model whose files were inspected and fit the node (no tensor data read, no JAX yet):
    what a parameter change can be refused on at once, before anything is compiled."""

    path: str
    hyper: Any


def check_model(path: Optional[str], n_features: int, n_outputs: int) -> CheckedModel:
    """Inspect `path` (default: the shipped demo model): the JSON, the tensors' names, shapes and
    dtypes from their headers, and the sizes against the node's features and outputs.
    `ModelError` naming the file or tensor, or `ConfigError` naming the parameter it contradicts.
    Milliseconds whatever the model's size: a tensor's values (NaN/Inf) are checked by
    `prepare`, which reads them."""
    from ..lnn.weights import inspect_model_files, output_size
    path = path or default_model_path()
    files = inspect_model_files(path)         # ModelError: one line naming the tensor
    name = os.path.basename(path)
    n_in, n_out = int(files['hyper']['n_inputs']), output_size(files['hyper'])
    if n_features != n_in:
        raise ConfigError('features', f'lists {n_features} fields but the model {name} takes '
                                      f'{n_in} inputs')
    if n_outputs != n_out:
        raise ConfigError('outputs', f'lists {n_outputs} fields but the model {name} gives '
                                     f'{n_out} outputs')
    return CheckedModel(path, files['hyper'])


def prepare(checked: CheckedModel, hold_on_non_finite: bool, dt0_of: Any,
            apart: bool = False) -> LoadedModel:
    """Read a checked model's tensors, put them on the device, compile and warm up its step with
    the nominal period `dt0_of(model)`: afterwards its first real step waits for nothing. The
    slow part (file I/O, XLA); it may run on any thread. Retrained weights of an architecture
    already compiled here compile nothing (`lnn/packed.py`); `apart`: a new architecture is
    compiled by a child process at nice 19 (`lnn/compile_apart.py`; beside a running control
    loop), in-process if that fails."""
    _start_jax()
    from ..lnn import build_model, read_model_files
    from ..lnn import packed
    path = checked.path
    model = build_model(path, read_model_files(path))   # ModelError: a tensor's NaN values
    compiled_by = 'already compiled'
    if not packed.is_compiled(model.hyper, model.params):
        compiled_by = 'compiled here'
        if apart:
            from ..lnn.compile_apart import CompileApartError, compile_apart
            try:
                packed.adopt(model.hyper, model.params, compile_apart(
                    model.hyper, model.params, model.state_size, model.n_inputs))
                compiled_by = 'compiled by a child process'
            except CompileApartError as exc:
                compiled_by = f'compiled here ({exc})'
    controller = Controller(model, hold_on_non_finite)
    _count_compilations()
    t0 = time.perf_counter()
    controller.warm_up(dt0_of(model))
    warmup_s = time.perf_counter() - t0
    training = getattr(model, 'training', None) or {}
    info = ModelInfo.from_file(
        path, version=str(training.get('version', '')), framework='jax', cell=str(model.cell),
        mode=str(model.mode or ''), units=int(model.units), input_mean=model.input_mean,
        input_std=model.input_std, macs_per_step=int(model.macs_per_step()),
        description=model.describe(),
        attributes={'lnn.inputs': model.n_inputs, 'lnn.outputs': model.n_outputs})
    return LoadedModel(path, model, controller, info, warmup_s, compiled_by)


def load_for_controller(path: Optional[str], n_features: int, n_outputs: int,
                        hold_on_non_finite: bool, dt0_of: Any) -> LoadedModel:
    """`check_model` then `prepare`: a model ready to step, or a one-line error."""
    return prepare(check_model(path, n_features, n_outputs), hold_on_non_finite, dt0_of)
