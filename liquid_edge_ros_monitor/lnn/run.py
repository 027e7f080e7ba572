"""`liquid-edge-monitor lnn-run`: run a [T, n_inputs] sequence through a model file, offline.

Used to check a model (ours or an ncps import) against recorded data outside ROS: the outputs are
those the inference node would produce for the same inputs and timespans.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

import numpy as np

PROG = 'liquid-edge-monitor lnn-run'


class RunError(Exception):
    """A one-line problem with an input file of lnn-run."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('--model', required=True, help='model .npz (or .json) path')
    p.add_argument('--inputs', required=True, help='[T, n_inputs] .npy')
    p.add_argument('--timespans', help='[T] .npy of elapsed time per step (default: 1.0, as ncps)')
    p.add_argument('--output', required=True,
                   help='where to write the [T, n_outputs] .npy (exactly this path)')


def _load_npy(path: str, what: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise RunError(f'{path}: {what} file not found')
    try:
        with open(p, 'rb') as f:
            magic = f.read(6)
    except OSError as exc:
        raise RunError(f'{path}: cannot read {what}: {exc.strerror}') from None
    if magic != b'\x93NUMPY':
        # np.load would talk about pickles and allow_pickle for a text or .npz file.
        raise RunError(f'{path}: {what} is not a .npy array (no NumPy header; write it with '
                       'numpy.save)')
    try:
        a = np.load(p, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise RunError(f'{path}: not a readable .npy ({str(exc).splitlines()[0] if str(exc) else exc})') from None
    if not isinstance(a, np.ndarray) or a.dtype.kind not in 'fiub':
        raise RunError(f'{path}: {what} must be a numeric array')
    if not np.all(np.isfinite(a)):
        raise RunError(f'{path}: {what} hold NaN/Inf values')
    return a.astype(np.float32)


def lnn_run(args: argparse.Namespace) -> int:
    """Run the sequence and write the outputs; 0 on success, 2 with one line on stderr otherwise."""
    from .model import load_model
    from .weights import ModelError
    try:
        model = load_model(args.model)
        xs = _load_npy(args.inputs, 'inputs')
        if xs.ndim != 2 or xs.shape[1] != model.n_inputs or xs.shape[0] == 0:
            raise RunError(f'{args.inputs}: inputs must have shape [T, {model.n_inputs}] for this model, '
                           f'got {list(xs.shape)}')
        dts: np.ndarray
        if args.timespans is None:
            dts = np.ones(xs.shape[0], np.float32)
        else:
            dts = _load_npy(args.timespans, 'timespans')
            if dts.ndim == 2 and dts.shape[1] == 1:   # [T, 1], as ncps also accepts
                dts = dts[:, 0]
            if dts.shape != (xs.shape[0],):
                raise RunError(f'{args.timespans}: timespans must have shape [{xs.shape[0]}], '
                               f'got {list(dts.shape)}')
            bad = np.flatnonzero(dts <= 0)
            if bad.size:     # an LTC with a zero timespan divides by it: NaN, silently
                raise RunError(f'{args.timespans}: timespans must be > 0, index {int(bad[0])} is '
                               f'{float(dts[bad[0]]):g}')
        _, ys = model.sequence(model.params, model.init_state(), xs, dts)
        out = Path(args.output)
        try:
            # Exactly the path given: np.save(path) would append .npy to `out` without a word.
            with open(out, 'wb') as f:
                np.save(f, np.asarray(ys, dtype=np.float32))
        except OSError as exc:
            raise RunError(f'{args.output}: cannot write output: {exc.strerror}') from None
        return 0
    except (ModelError, RunError) as exc:
        print(f'{PROG}: error: {exc}', file=sys.stderr)
        return 2


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split('\n')[0])
    add_arguments(ap)
    return lnn_run(ap.parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
