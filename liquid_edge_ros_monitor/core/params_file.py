"""Params files named on the command line, checked before rcl reads them (pure).

rcl refuses a missing file, a file that is not YAML, a top-level list or a TAB with a many-line
`RCLError` plus a log line of its own; here each is one line naming the file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional, Sequence

import yaml


class ParamsFileError(Exception):
    """A params file that cannot be used, in one line naming it."""


def load_params_file(path: str) -> Any:
    """The parsed file, or ParamsFileError naming it (not found, unreadable, not YAML)."""
    p = Path(path)
    if not p.is_file():
        raise ParamsFileError(f'{path}: params file not found')
    try:
        return yaml.safe_load(p.read_text())
    except OSError as exc:
        raise ParamsFileError(f'{path}: cannot read params file: {exc.strerror}') from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, 'problem_mark', None)
        where = f' at line {mark.line + 1}' if mark is not None else ''
        problem = getattr(exc, 'problem', None)
        why = f': {problem}' if problem else ''
        raise ParamsFileError(f'{path}: not valid YAML{where}{why}') from None


def params_files(args: Optional[Sequence[str]]) -> List[str]:
    """The `--params-file` arguments inside `--ros-args` sections of `args`."""
    out: List[str] = []
    ros = False
    items = list(args or [])
    for i, a in enumerate(items):
        if a == '--ros-args':
            ros = True
        elif a == '--':
            ros = False
        elif ros and a == '--params-file' and i + 1 < len(items):
            out.append(items[i + 1])
        elif ros and a.startswith('--params-file='):
            out.append(a.split('=', 1)[1])
    return out


def check_params_files(args: Optional[Sequence[str]]) -> None:
    """ParamsFileError for the first params file in `args` rcl would refuse."""
    for path in params_files(args):
        data = load_params_file(path)
        if data is not None and not isinstance(data, dict):
            raise ParamsFileError(f"{path}: not a mapping of '<node name>: ros__parameters:' "
                                  f'sections (top level is a {type(data).__name__})')
