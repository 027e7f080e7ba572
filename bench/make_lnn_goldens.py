"""Dev-only: generate the ncps-torch parity goldens under test/data/lnn/ (needs torch and ncps).

    .venv/bin/pip install -r requirements-dev.txt    # see the notes there
    .venv/bin/python bench/make_lnn_goldens.py [CASE ...]      # all cases, or only those named

For each case it builds an ncps torch wrapper with a fixed seed, perturbs every trainable tensor
(so that e.g. the pure mode's A=1, w_tau=0 and the LTC's unit input mapping are really exercised),
and writes three files:

- ``CASE.npz``: the wrapper's ``state_dict()`` under its own names,
- ``CASE.json``: ``"format": "ncps-torch"`` with the wrapper's constructor arguments,
- ``CASE_io.npz``: ``inputs`` [T, n], ``timespans`` [T] (random), and the torch outputs and final states
  for no timespans (``y_dt1``, ``h_dt1``, ncps' default 1.0) and for the random ones (``y_dt``, ``h_dt``).

Run once; the tests read the committed files and never import torch.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import torch
from ncps.torch import CfC, LTC
from ncps.wirings import NCP, AutoNCP, FullyConnected, Random

OUT = Path(__file__).resolve().parents[1] / 'test' / 'data' / 'lnn'
N_IN, T = 5, 40

Case = Tuple[str, Callable[[], torch.nn.Module], Dict[str, Any]]


def _wiring(units: int, out: int) -> Tuple[Callable[[], Any], Dict[str, Any]]:
    def make() -> Any:
        return AutoNCP(units, out, seed=7)
    return make, {'class': 'AutoNCP', 'units': units, 'output_dim': out}


def cases() -> List[Case]:
    w10, w10_cfg = _wiring(10, 3)
    w12, w12_cfg = _wiring(12, 2)
    cfc = [
        ('cfc_default', dict(units=8, backbone_units=16)),
        ('cfc_no_gate', dict(units=8, mode='no_gate', activation='silu', backbone_units=16)),
        ('cfc_pure', dict(units=8, mode='pure', activation='gelu', backbone_units=16)),
        ('cfc_proj_3layers', dict(units=8, proj_size=3, activation='relu', backbone_units=12,
                                  backbone_layers=3, backbone_dropout=0.1)),
        ('cfc_tanh_nobackbone', dict(units=6, activation='tanh', backbone_layers=0, proj_size=2)),
    ]
    out: List[Case] = []
    for name, kw in cfc:
        out.append((name, (lambda kw=kw: CfC(N_IN, **kw)),
                    {'class': 'CfC', 'input_size': N_IN, **kw}))
    out.append(('cfc_wired_ncp', lambda: CfC(N_IN, w10()),
                {'class': 'CfC', 'input_size': N_IN, 'units': w10_cfg}))
    ltc = [
        ('ltc_constrained', dict(units=8)),
        ('ltc_unconstrained', dict(units=8, implicit_param_constraints=False,
                                   input_mapping=None, output_mapping='linear')),
        ('ltc_unfolds3', dict(units=6, ode_unfolds=3, input_mapping='linear',
                              output_mapping=None)),
    ]
    for name, kw in ltc:
        out.append((name, (lambda kw=kw: LTC(N_IN, **kw)),
                    {'class': 'LTC', 'input_size': N_IN, **kw}))
    out.append(('ltc_wired_ncp', lambda: LTC(N_IN, w12()),
                {'class': 'LTC', 'input_size': N_IN, 'units': w12_cfg}))
    # Every ncps wiring, its config saved exactly as its own get_config() writes it (issue 12).
    for wname, make_wiring in WIRINGS.items():
        for cls, kw in (('CfC', {}), ('LTC', {}), ('LTC', {'output_mapping': None})):
            if cls == 'CfC':
                name = f'cfc_wiring_{wname}'
            else:
                name = f'ltc_wiring_{wname}' + ('_nomap' if kw else '')
                if kw and wname != 'autoncp':
                    continue
            wiring = make_wiring()
            wrapper = CfC if cls == 'CfC' else LTC
            out.append((name, (lambda w=wiring, c=wrapper, kw=kw: c(N_IN, w, **kw)),
                        {'class': cls, 'input_size': N_IN, 'units': wiring.get_config, **kw}))
    return out


#: small wirings (a few KB of goldens each)
WIRINGS: Dict[str, Callable[[], Any]] = {
    'fully_connected': lambda: FullyConnected(6, 2),
    'random': lambda: Random(7, 2, sparsity_level=0.5, random_seed=3),
    'ncp': lambda: NCP(3, 3, 2, sensory_fanout=2, inter_fanout=2, recurrent_command_synapses=2,
                       motor_fanin=2, seed=5),
    'autoncp': lambda: AutoNCP(9, 2, seed=7),
}


def perturb(model: torch.nn.Module, gen: torch.Generator, positive: bool) -> None:
    """Move every trainable tensor off its initial value (masks are not trainable: left as wired)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            p.add_(0.2 * torch.randn(p.shape, generator=gen))
            if positive and name.split('.')[-1] in ('w', 'sensory_w', 'cm', 'gleak'):
                p.abs_()


def main(only: List[str]) -> int:
    """Write every case, or only those named on the command line."""
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1234)
    for i, (name, make, meta) in enumerate(cases()):
        torch.manual_seed(100 + i)
        model = make().eval()
        # A wiring's config is read once the wrapper has built it, as a user saving it would.
        meta = {k: (v() if callable(v) else v) for k, v in meta.items()}
        if only and name not in only:
            xs = rng.standard_normal((T, N_IN))       # keep the stream of the other cases
            rng.uniform(0.05, 1.5, size=T)
            continue
        perturb(model, torch.Generator().manual_seed(200 + i),
                positive=meta.get('implicit_param_constraints') is False)
        xs = rng.standard_normal((T, N_IN)).astype(np.float32)
        ts = rng.uniform(0.05, 1.5, size=T).astype(np.float32)
        with torch.no_grad():
            y1, h1 = model(torch.from_numpy(xs))
            y2, h2 = model(torch.from_numpy(xs), timespans=torch.from_numpy(ts))
        tensors = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
        np.savez_compressed(OUT / f'{name}.npz', **tensors)
        (OUT / f'{name}.json').write_text(json.dumps({'format': 'ncps-torch', **meta}, indent=1) + '\n')
        np.savez_compressed(OUT / f'{name}_io.npz', inputs=xs, timespans=ts,
                            y_dt1=y1.numpy(), h_dt1=h1.numpy(), y_dt=y2.numpy(), h_dt=h2.numpy())
        print(f'{name}: {sorted(tensors)[:3]}... y {tuple(y1.shape)} h {tuple(h1.shape)}')
    print(f'torch {torch.__version__}; wrote {OUT}')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
