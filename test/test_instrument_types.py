"""The instrumentation API is typed (PEP 561), as a user's type checker sees it: the package
ships `py.typed`, its own annotations are complete and consistent, and an instrumented callback
keeps the signature the user wrote, so mistakes through the API are caught.

mypy reads the package the way it reads an installed library: from a directory on the
interpreter's PYTHONPATH, where a package without `py.typed` is skipped as untyped (every call
through it would then pass). test_packaging.py checks that colcon installs the marker.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import List, Set, Tuple

from conftest import REPO

DATA = Path(__file__).resolve().parent / 'data' / 'typing'


def mypy(tmp_path: Path, *args: str) -> Tuple[int, List[str]]:
    """Exit code and output lines of mypy run by this interpreter, the package found as an
    installed library is (on PYTHONPATH), with a cache of this test's own."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, '-m', 'mypy', '--cache-dir', str(tmp_path / 'mypy_cache'),
         '--no-error-summary', '--hide-error-context', *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    return proc.returncode, [ln for ln in proc.stdout.splitlines() if ln.strip()]


def test_the_package_says_it_is_typed():
    assert (REPO / 'liquid_edge_ros_monitor' / 'py.typed').is_file()


def test_the_api_package_is_fully_annotated_and_consistent(tmp_path):
    """Every function of `instrument/` annotated, and mypy finds no error in it (the modules it
    imports from the rest of the package are read for their types, not checked here)."""
    code, out = mypy(tmp_path, '--follow-imports=silent', '--disallow-untyped-defs',
                     '--disallow-incomplete-defs', str(REPO / 'liquid_edge_ros_monitor' / 'instrument'))
    assert code == 0, '\n'.join(out)


def test_the_whole_package_type_checks_on_this_distro(tmp_path):
    """`py.typed` speaks for every module, so mypy finds no error in any of them, against this
    distro's rclpy annotations (Jazzy's and Kilted's differ). ROS message packages, PyYAML and
    psutil ship no types: imports of them are read as Any."""
    code, out = mypy(tmp_path, '--ignore-missing-imports', str(REPO / 'liquid_edge_ros_monitor'))
    assert code == 0, '\n'.join(out)


def test_a_users_node_written_as_the_docs_show_type_checks(tmp_path):
    code, out = mypy(tmp_path, str(DATA / 'user_node.py'))
    assert code == 0, '\n'.join(out)


def test_mistakes_through_the_api_are_caught_where_they_are(tmp_path):
    """Each `# expect: <code>` line of the file, and no other: a wrong model argument, a
    callback called with the wrong arguments (`callback()` and `monitor_inference` keep the
    user's signature), a result used as the wrong type."""
    path = DATA / 'user_node_mistakes.py'
    expected: Set[Tuple[int, str]] = set()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        m = re.search(r'# expect: ([\w-]+)', line)
        if m:
            expected.add((number, m.group(1)))
    assert len(expected) == 4
    code, out = mypy(tmp_path, str(path))
    found = set()
    for line in out:
        m = re.match(r'.*user_node_mistakes\.py:(\d+): error: .*\[([\w-]+)\]$', line)
        assert m, f'an unexpected mypy line: {line}'
        found.add((int(m.group(1)), m.group(2)))
    assert code == 1 and found == expected, '\n'.join(out)
