"""Per-step latency of our jitted CfC/LTC step vs the ncps torch cell on the same weights (batch 1).

    .venv/bin/python bench/lnn_step.py [--steps 5000] [--warmup 500] [--out bench/results/lnn_step.json]

For each size (inputs, units) in (8, 32) and (16, 64), an ncps torch ``CfC(n, units)`` (ncps defaults:
mode default, backbone 128 units, 1 layer) and ``LTC(n, units)`` are built with a fixed seed, their
``state_dict()`` is loaded through our ncps import (``load_model``), and both run the same random
inputs one step at a time, as an inference node does: each timed step starts from the host and ends
with the output ready (``block_until_ready`` on ours; torch is synchronous). Warm-up steps
(including JAX's compile) are excluded. Ours and torch alternate in blocks of 500 steps so drift on
the machine affects both. Without torch installed only our columns are printed.

Our variants: ``jit`` is ``Model.step`` (one jitted function, output included); ``aot`` is the same
function compiled ahead of time (``jit(...).lower(...).compile()``), which skips the jit dispatch's
cache lookup; ``bound`` is ``Model.bound_step()`` (the parameters compiled in as constants) and
``packed`` ``Model.packed_step()`` (the parameters as one vector argument, one program per
architecture: what the inference node steps), both called as the node calls them: numpy input and
dt from the host, the output back to numpy.

``--dispatch sync`` (the default, as the inference node runs) turns off JAX's asynchronous CPU
dispatch before anything is computed, so a step runs on the calling thread; ``--dispatch async``
is JAX's default. Run both to compare (one process each: the setting is read once).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from liquid_edge_ros_monitor.lnn import Model, load_model  # noqa: E402
from liquid_edge_ros_monitor.lnn.weights import check_hyper, expected_shapes  # noqa: E402

from common import cpu_model as _cpu_model  # noqa: E402

try:
    import torch
    from ncps.torch import CfC, LTC
except ImportError:   # torch is dev-only (requirements-dev.txt)
    torch = None

SIZES = [(8, 32), (16, 64)]
BLOCK = 500


def _ours_from_torch(cls: str, n: int, units: int) -> Tuple[Model, Any]:
    torch.manual_seed(0)
    net = (CfC(n, units) if cls == 'CfC' else LTC(n, units)).eval()
    with tempfile.TemporaryDirectory() as d:
        np.savez(Path(d) / 'm.npz', **{k: v.numpy() for k, v in net.state_dict().items()})
        (Path(d) / 'm.json').write_text(json.dumps(
            {'format': 'ncps-torch', 'class': cls, 'input_size': n, 'units': units}))
        return load_model(Path(d) / 'm.npz'), net


def _ours_random(cls: str, n: int, units: int) -> Model:
    hyper = check_hyper(Path('bench'), {'cell': cls.lower(), 'n_inputs': n, 'units': units})
    rng = np.random.default_rng(0)
    params = {k: (0.1 * rng.standard_normal(s)).astype(np.float32) + (1.0 if 'mask' in k else 0.0)
              for k, s in expected_shapes(hyper).items()}
    return Model(hyper, params)




def _time(fn: Callable[[int], None], steps: int, warmup: int) -> np.ndarray:
    for i in range(warmup):
        fn(i)
    out = np.empty(steps)
    clock = time.perf_counter_ns
    for i in range(steps):
        t0 = clock()
        fn(i)
        out[i] = clock() - t0
    return out / 1000.0   # us


def _ours_fns(m: Model, xs: np.ndarray, dts: np.ndarray) -> Dict[str, Callable[[int], None]]:
    xj = [jnp.asarray(x) for x in xs]
    dj = [jnp.float32(d) for d in dts]
    aot = m.step.lower(m.params, m.init_state(), xj[0], dj[0]).compile()
    fns = {}
    for name, f in (('jit', m.step), ('aot', aot)):
        state = {'h': m.init_state()}

        def run(i: int, f: Any = f, state: Dict[str, Any] = state) -> None:
            h, y = f(m.params, state['h'], xj[i % len(xj)], dj[i % len(dj)])
            y.block_until_ready()
            state['h'] = h
        fns[name] = run
    bound = m.bound_step()
    xn = [np.asarray(x) for x in xs]
    dn = [np.float32(d) for d in dts]
    state_b = {'h': m.init_state()}

    def run_bound(i: int) -> None:
        h, y = bound(state_b['h'], xn[i % len(xn)], dn[i % len(dn)])
        np.asarray(y)
        state_b['h'] = h
    fns['bound'] = run_bound
    packed_step, packed = m.packed_step()
    state_p = {'h': m.init_state()}

    def run_packed(i: int) -> None:
        h, y = packed_step(packed, state_p['h'], xn[i % len(xn)], dn[i % len(dn)])
        np.asarray(y)
        state_p['h'] = h
    fns['packed'] = run_packed
    return fns


def _torch_fn(net: Any, cls: str, units: int, xs: np.ndarray, dts: np.ndarray) -> Callable[[int], None]:
    cell = net.rnn_cell
    fc = getattr(net, 'fc', None)
    xt = [torch.from_numpy(x[None, :]) for x in xs]
    state = {'h': torch.zeros(1, units)}

    def run(i: int) -> None:
        with torch.no_grad():
            y, h = cell(xt[i % len(xt)], state['h'], float(dts[i % len(dts)]))
            if fc is not None:
                y = fc(y)
        state['h'] = h
    return run


def _stats(us: np.ndarray) -> Dict[str, float]:
    return {'p50_us': float(np.percentile(us, 50)), 'p99_us': float(np.percentile(us, 99)),
            'mean_us': float(us.mean())}


def bench(steps: int, warmup: int) -> List[Dict[str, Any]]:
    rows = []
    rng = np.random.default_rng(1)
    for cls in ('CfC', 'LTC'):
        for n, units in SIZES:
            xs = rng.standard_normal((1000, n)).astype(np.float32)
            dts = rng.uniform(0.004, 0.006, 1000).astype(np.float32)
            if torch is not None:
                model, net = _ours_from_torch(cls, n, units)
                fns = {**_ours_fns(model, xs, dts), 'torch': _torch_fn(net, cls, units, xs, dts)}
            else:
                model = _ours_random(cls, n, units)
                fns = _ours_fns(model, xs, dts)
            samples: Dict[str, List[np.ndarray]] = {k: [] for k in fns}
            for k, f in fns.items():
                _time(f, 0, warmup)
            for _ in range(max(1, steps // BLOCK)):
                for k, f in fns.items():
                    samples[k].append(_time(f, BLOCK, 20))
            row: Dict[str, Any] = {'cell': cls, 'inputs': n, 'units': units,
                                   'macs_per_step': model.macs_per_step()}
            for k, parts in samples.items():
                row[k] = _stats(np.concatenate(parts))
            if 'torch' in row:
                for k in ('jit', 'aot', 'bound', 'packed'):
                    row[f'{k}_over_torch_p50'] = row[k]['p50_us'] / row['torch']['p50_us']
                    row[f'{k}_over_torch_p99'] = row[k]['p99_us'] / row['torch']['p99_us']
            rows.append(row)
            print(_line(row), flush=True)
    return rows


def _line(r: Dict[str, Any]) -> str:
    s = (f"{r['cell']:3s} in={r['inputs']:2d} units={r['units']:2d}  "
         f"jit p50 {r['jit']['p50_us']:7.1f} p99 {r['jit']['p99_us']:7.1f} us | "
         f"aot p50 {r['aot']['p50_us']:7.1f} p99 {r['aot']['p99_us']:7.1f} us | "
         f"bound p50 {r['bound']['p50_us']:7.1f} p99 {r['bound']['p99_us']:7.1f} us | "
         f"packed p50 {r['packed']['p50_us']:7.1f} p99 {r['packed']['p99_us']:7.1f} us "
         f"({r['packed']['p50_us'] / r['bound']['p50_us']:.2f}x bound)")
    if 'torch' in r:
        s += (f" | torch p50 {r['torch']['p50_us']:7.1f} p99 {r['torch']['p99_us']:7.1f} us"
              f" | jit/torch p50 {r['jit_over_torch_p50']:.2f} p99 {r['jit_over_torch_p99']:.2f}"
              f" aot/torch p50 {r['aot_over_torch_p50']:.2f}"
              f" bound/torch p50 {r['bound_over_torch_p50']:.2f}")
    return s


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--steps', type=int, default=5000, help='timed steps per variant')
    ap.add_argument('--warmup', type=int, default=500)
    ap.add_argument('--out', default=str(REPO / 'bench' / 'results' / 'lnn_step.json'))
    ap.add_argument('--dispatch', choices=('sync', 'async'), default='sync',
                    help="JAX's CPU dispatch: sync as the inference node runs (default), or async")
    args = ap.parse_args(argv)
    if args.dispatch == 'sync':
        jax.config.update('jax_cpu_enable_async_dispatch', False)
    if torch is None:
        print('torch/ncps not installed (dev-only, see requirements-dev.txt): '
              'torch columns skipped, our latencies only', flush=True)
    env = {'python': platform.python_version(), 'jax': jax.__version__,
           'torch': torch.__version__ if torch is not None else None,
           'torch_threads': torch.get_num_threads() if torch is not None else None,
           'machine': platform.machine(), 'jax_backend': jax.default_backend(),
           'dispatch': args.dispatch, 'cpu': _cpu_model()}
    print(json.dumps(env), flush=True)
    rows = bench(args.steps, args.warmup)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({'env': env, 'rows': rows}, indent=1) + '\n')
    print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
