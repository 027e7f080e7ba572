"""`liquid-edge-monitor lnn-run`, through the installed console script, against the ncps goldens."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import List

import numpy as np
import pytest

DATA = Path(__file__).resolve().parent / 'data' / 'lnn'
SCRIPT = Path(sys.executable).parent / 'liquid-edge-monitor'


def _run(args: List[str]) -> subprocess.CompletedProcess:
    assert SCRIPT.is_file(), f'{SCRIPT} missing: pip install -e . into the venv'
    return subprocess.run([str(SCRIPT), 'lnn-run', *args], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize('case,timed', [('ltc_constrained', True), ('cfc_proj_3layers', False)])
def test_outputs_match_ncps_golden(tmp_path: Path, case: str, timed: bool) -> None:
    io = np.load(DATA / f'{case}_io.npz')
    np.save(tmp_path / 'x.npy', io['inputs'])
    args = ['--model', str(DATA / f'{case}.npz'), '--inputs', str(tmp_path / 'x.npy'),
            '--output', str(tmp_path / 'y.npy')]
    if timed:
        np.save(tmp_path / 't.npy', io['timespans'])
        args += ['--timespans', str(tmp_path / 't.npy')]
    r = _run(args)
    assert r.returncode == 0, r.stderr
    y = np.load(tmp_path / 'y.npy')
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, io['y_dt' if timed else 'y_dt1'], rtol=1e-5, atol=1e-6)


def _one_line_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith('liquid-edge-monitor lnn-run: error: ')
    return lines[0]


def test_wrong_input_width(tmp_path: Path) -> None:
    np.save(tmp_path / 'x.npy', np.zeros((10, 4), np.float32))
    line = _one_line_error(_run(['--model', str(DATA / 'cfc_default.npz'), '--inputs',
                                 str(tmp_path / 'x.npy'), '--output', str(tmp_path / 'y.npy')]))
    assert 'x.npy: inputs must have shape [T, 5] for this model, got [10, 4]' in line
    assert not (tmp_path / 'y.npy').exists()


def test_wrong_timespans_length(tmp_path: Path) -> None:
    np.save(tmp_path / 'x.npy', np.zeros((10, 5), np.float32))
    np.save(tmp_path / 't.npy', np.ones(9, np.float32))
    line = _one_line_error(_run(['--model', str(DATA / 'cfc_default.npz'), '--inputs',
                                 str(tmp_path / 'x.npy'), '--timespans', str(tmp_path / 't.npy'),
                                 '--output', str(tmp_path / 'y.npy')]))
    assert 't.npy: timespans must have shape [10], got [9]' in line


def test_missing_files(tmp_path: Path) -> None:
    np.save(tmp_path / 'x.npy', np.zeros((10, 5), np.float32))
    line = _one_line_error(_run(['--model', str(tmp_path / 'none.npz'), '--inputs',
                                 str(tmp_path / 'x.npy'), '--output', str(tmp_path / 'y.npy')]))
    assert f"{tmp_path / 'none.json'}: hyperparameter JSON not found" in line
    line = _one_line_error(_run(['--model', str(DATA / 'cfc_default.npz'), '--inputs',
                                 str(tmp_path / 'absent.npy'), '--output', str(tmp_path / 'y.npy')]))
    assert 'absent.npy: inputs file not found' in line


@pytest.mark.parametrize('bad', [0.0, -0.5])
def test_non_positive_timespans_are_refused_naming_the_index(tmp_path: Path, bad: float) -> None:
    """An LTC with one zero timespan wrote NaN, silently (issue 12)."""
    np.save(tmp_path / 'x.npy', np.zeros((10, 5), np.float32))
    t = np.ones(10, np.float32)
    t[3] = bad
    t[7] = bad
    np.save(tmp_path / 't.npy', t)
    line = _one_line_error(_run(['--model', str(DATA / 'ltc_constrained.npz'), '--inputs',
                                 str(tmp_path / 'x.npy'), '--timespans', str(tmp_path / 't.npy'),
                                 '--output', str(tmp_path / 'y.npy')]))
    assert f't.npy: timespans must be > 0, index 3 is {bad:g}' in line
    assert not (tmp_path / 'y.npy').exists()


def test_output_is_written_exactly_where_asked(tmp_path: Path) -> None:
    """`--output out` used to write out.npy."""
    np.save(tmp_path / 'x.npy', np.zeros((4, 5), np.float32))
    p = _run(['--model', str(DATA / 'cfc_default.npz'), '--inputs', str(tmp_path / 'x.npy'),
              '--output', str(tmp_path / 'out')])
    assert p.returncode == 0, p.stderr
    assert (tmp_path / 'out').is_file() and not (tmp_path / 'out.npy').exists()
    assert np.load(tmp_path / 'out').shape[0] == 4


def test_a_text_file_named_npy_is_said_to_be_no_npy_array(tmp_path: Path) -> None:
    (tmp_path / 'x.npy').write_text('1 2 3 4 5\n')
    line = _one_line_error(_run(['--model', str(DATA / 'cfc_default.npz'), '--inputs',
                                 str(tmp_path / 'x.npy'), '--output', str(tmp_path / 'y.npy')]))
    assert 'x.npy: inputs is not a .npy array' in line and 'pickle' not in line
