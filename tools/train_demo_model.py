"""Train the demo model (IMU -> velocity command, a small CfC) in pure JAX and write models/imu_velocity.*.

    .venv/bin/python tools/train_demo_model.py [--steps N] [--out models/imu_velocity.npz]

The model is trained on sequences from `liquid_edge_ros_monitor.lnn.demo_task` with inputs scaled by
their training mean/std; the scaling is then folded into the first backbone layer, so the saved
model takes raw IMU values (and the mean/std are saved too, for the node's input-drift score). The
cell code is the same `make_step` the node runs. Deterministic for a given seed (CPU, float32).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Dict, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.example_libraries import optimizers

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from liquid_edge_ros_monitor.lnn import Model, load_model, save_model  # noqa: E402
from liquid_edge_ros_monitor.lnn import demo_task as task  # noqa: E402
from liquid_edge_ros_monitor.lnn.cells import make_sequence, make_step  # noqa: E402
from liquid_edge_ros_monitor.lnn.weights import check_hyper, expected_shapes  # noqa: E402

HYPER = {'cell': 'cfc', 'mode': 'default', 'n_inputs': 3, 'units': 24, 'proj_size': 2,
         'backbone_activation': 'lecun_tanh', 'backbone_units': 32, 'backbone_layers': 1}
TRAIN_SEED, HELD_OUT_SEED = 1, 1000


def init_params(key: jax.Array, hyper: Dict[str, Any]) -> Dict[str, jax.Array]:
    """Xavier-uniform weights (as ncps initialises them) and zero biases."""
    params = {}
    for name, shape in sorted(expected_shapes(hyper).items()):
        key, sub = jax.random.split(key)
        if len(shape) == 2:
            limit = float(np.sqrt(6.0 / (shape[0] + shape[1])))
            params[name] = jax.random.uniform(sub, shape, jnp.float32, -limit, limit)
        else:
            params[name] = jnp.zeros(shape, jnp.float32)
    return params


def fold_input_scaling(params: Dict[str, jax.Array], mean: np.ndarray, std: np.ndarray,
                       n_inputs: int) -> Dict[str, np.ndarray]:
    """W (x - mean) / std + b  ==  (W / std) x + (b - W mean / std): raw inputs, same outputs."""
    out = {k: np.asarray(v, np.float64) for k, v in params.items()}
    w = out['rnn_cell.backbone.0.weight']
    wx = w[:, :n_inputs]
    out['rnn_cell.backbone.0.bias'] = out['rnn_cell.backbone.0.bias'] - wx @ (mean / std)
    w[:, :n_inputs] = wx / std
    return {k: v.astype(np.float32) for k, v in out.items()}


def train(steps: int, batch: int, seq_s: float, lr: float, log_every: int, units: int,
          backbone_units: int) -> Tuple[Model, Dict[str, Any]]:
    hyper = check_hyper(Path('HYPER'), {**HYPER, 'units': units, 'backbone_units': backbone_units})
    xs, dts, ys = task.make_batch(TRAIN_SEED, 384, seq_s)
    mean = xs.reshape(-1, 3).mean(axis=0).astype(np.float64)
    std = xs.reshape(-1, 3).std(axis=0).astype(np.float64)
    xn = ((xs - mean) / std).astype(np.float32)
    skip = int(0.25 * task.RATE_HZ)

    seq = make_sequence(make_step(hyper))
    batched = jax.vmap(seq, in_axes=(None, 0, 0, 0))

    def loss_fn(p: Dict[str, jax.Array], x: jax.Array, d: jax.Array, y: jax.Array) -> jax.Array:
        h0 = jnp.zeros((x.shape[0], hyper['units']), jnp.float32)
        _, pred = batched(p, h0, x, d)
        return jnp.mean(jnp.square(pred[:, skip:] - y[:, skip:]))

    schedule = optimizers.exponential_decay(lr, steps, 0.1)
    opt_init, opt_update, get_params = optimizers.adam(schedule)

    @jax.jit
    def update(i: int, state: Any, x: jax.Array, d: jax.Array, y: jax.Array) -> Tuple[Any, jax.Array]:
        loss, grads = jax.value_and_grad(loss_fn)(get_params(state), x, d, y)
        grads = optimizers.clip_grads(grads, 1.0)
        return opt_update(i, grads, state), loss

    state = opt_init(init_params(jax.random.PRNGKey(TRAIN_SEED), hyper))
    order = np.random.default_rng(TRAIN_SEED)
    t0 = time.monotonic()
    for i in range(steps):
        idx = order.choice(len(xs), size=batch, replace=False)
        state, loss = update(i, state, xn[idx], dts[idx], ys[idx])
        if log_every and (i % log_every == 0 or i == steps - 1):
            print(f'step {i:5d}  loss {float(loss):.5f}  {time.monotonic() - t0:6.1f} s', flush=True)
    seconds = time.monotonic() - t0

    tensors = fold_input_scaling(get_params(state), mean, std, hyper['n_inputs'])
    model = Model(hyper, tensors, mean.astype(np.float32), std.astype(np.float32),
                  list(task.INPUT_NAMES), list(task.OUTPUT_NAMES))
    info = {'script': 'tools/train_demo_model.py', 'task': 'liquid_edge_ros_monitor.lnn.demo_task',
            'train_seed': TRAIN_SEED, 'train_sequences': len(xs), 'sequence_seconds': seq_s,
            'steps': steps, 'batch': batch, 'learning_rate': lr, 'train_seconds': round(seconds, 1),
            'dt_unit': 'seconds', 'dt': 1.0 / task.RATE_HZ}
    return model, info


def main(argv: Any = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--steps', type=int, default=2500)
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--seq-seconds', type=float, default=4.0)
    ap.add_argument('--lr', type=float, default=3e-3)
    ap.add_argument('--units', type=int, default=HYPER['units'])
    ap.add_argument('--backbone-units', type=int, default=HYPER['backbone_units'])
    ap.add_argument('--out', default=str(REPO / 'models' / 'imu_velocity.npz'))
    ap.add_argument('--log-every', type=int, default=100)
    args = ap.parse_args(argv)
    model, info = train(args.steps, args.batch, args.seq_seconds, args.lr, args.log_every,
                        args.units, args.backbone_units)
    held = task.evaluate(model, HELD_OUT_SEED)
    model.training = {**info, 'held_out': held}
    save_model(model, args.out)
    back = load_model(args.out)   # what ships is what was scored
    again = task.evaluate(back, HELD_OUT_SEED)
    assert again['accuracy'] == held['accuracy'], (again, held)
    print(f"wrote {args.out}: {back.describe()}")
    print(f"held-out accuracy {held['accuracy']:.4f} (per output {held['accuracy_per_output']}), "
          f"RMSE {held['rmse']}, tolerance {held['tolerance']}, after {task.WARMUP_S} s warm-up; "
          f"trained in {info['train_seconds']} s")
    return 0


if __name__ == '__main__':
    sys.exit(main())
