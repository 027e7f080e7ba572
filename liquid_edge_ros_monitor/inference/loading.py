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
from typing import Any, Optional

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

    def on_event(name: str, _secs: float, **_kw: Any) -> None:
        if name == _COMPILE_EVENT:
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


def _sync_steps() -> None:
    import jax
    try:
        # Run each step on the calling thread: for a small cell, handing it to XLA's CPU
        # thread and waiting for the result costs more than the step (BENCHMARKS: profile).
        # Must precede the first computation; a JAX without the flag keeps async dispatch.
        jax.config.update('jax_cpu_enable_async_dispatch', False)
    except (AttributeError, KeyError, ValueError):
        pass


def load_for_controller(path: Optional[str], n_features: int, n_outputs: int,
                        hold_on_non_finite: bool, dt0_of: Any) -> LoadedModel:
    """Load `path` (default: the shipped demo model), check that it takes `n_features` inputs and
    gives `n_outputs` outputs, compile and warm up its step with the nominal period `dt0_of(model)`.
    """
    _sync_steps()
    from ..lnn import load_model
    path = path or default_model_path()
    model = load_model(path)                  # ModelError: one line naming the tensor
    name = os.path.basename(path)
    if n_features != model.n_inputs:
        raise ConfigError('features', f'lists {n_features} fields but the model {name} takes '
                                      f'{model.n_inputs} inputs')
    if n_outputs != model.n_outputs:
        raise ConfigError('outputs', f'lists {n_outputs} fields but the model {name} gives '
                                     f'{model.n_outputs} outputs')
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
    return LoadedModel(path, model, controller, info, warmup_s)
