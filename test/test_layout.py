"""The package layout's rules, checked on the source: one folder per node over `core/` and `lnn/`,
and the public instrumentation library `instrument/` between them.

- a node's folder (`topics/`, `graph/`, `inference/`) imports `core/`, `lnn/` and itself, never
  another node's folder nor the top-level modules (`cli`, `live_view`, `sim_robot`);
  `inference/` also imports `instrument/`, which it is built on;
- `instrument/` imports only `core/` (a team's node gets no JAX and no node of ours with it);
- `core/` and `lnn/` import nothing of the package above them (`lnn/` not even `core/`: it is
  pure JAX);
- every console script in setup.py points at a module that has its function.
"""
from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path
from typing import Iterator, Tuple

import pytest

from conftest import REPO

PKG = 'liquid_edge_ros_monitor'
ROOT = REPO / PKG
NODE_FOLDERS = ('topics', 'graph', 'inference')

#: What each folder may import from the package (its own folder is always allowed).
ALLOWED = {
    'topics': {'core', 'lnn'},
    'graph': {'core', 'lnn'},
    'inference': {'core', 'lnn', 'instrument'},
    'instrument': {'core'},
    'core': set(),
    'lnn': set(),
}


def _package_imports(path: Path) -> Iterator[Tuple[int, str]]:
    """(line, first component below the package) of every import of the package in `path`."""
    rel_parts = path.relative_to(ROOT).parts[:-1]     # the module's folder inside the package
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(rel_parts[:len(rel_parts) - (node.level - 1)])
                target = base + (node.module.split('.') if node.module else [])
                if not target:          # `from . import x` at the package's top level
                    target = [node.names[0].name]
            elif node.module and node.module.split('.')[0] == PKG:
                target = node.module.split('.')[1:] or [node.names[0].name]
            else:
                continue
            yield node.lineno, target[0]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split('.')
                if parts[0] == PKG and len(parts) > 1:
                    yield node.lineno, parts[1]


@pytest.mark.parametrize('folder', sorted(ALLOWED))
def test_folder_imports_only_what_the_layout_allows(folder):
    files = sorted((ROOT / folder).glob('*.py'))
    assert files, f'{folder}/ has no modules'
    bad = []
    for path in files:
        for line, target in _package_imports(path):
            if target != folder and target not in ALLOWED[folder]:
                bad.append(f'{path.relative_to(REPO)}:{line} imports {PKG}.{target}')
    assert not bad, '\n'.join(bad)


def test_the_layout_check_sees_a_cross_node_import(tmp_path, monkeypatch):
    """The checker itself: a relative import of another node's folder is found."""
    fake_root = tmp_path / PKG
    (fake_root / 'graph').mkdir(parents=True)
    bad = fake_root / 'graph' / 'x.py'
    bad.write_text('from ..topics.stats import TopicWindow\nfrom ..core import levels\n')
    monkeypatch.setattr(__import__(__name__), 'ROOT', fake_root)
    assert [t for _, t in _package_imports(bad)] == ['topics', 'core']


def test_no_module_is_left_at_the_old_flat_paths():
    """Moved modules leave no shim behind (imports of the old names must fail)."""
    for old in ('topic_monitor', 'node_monitor', 'liquid_inference', 'metrics', 'config', 'health',
                'stats', 'cdr', 'receiver', 'inference', 'graph.graph', 'nodes', 'msg_fields',
                'runner', 'diagnostics', 'ros_params', 'tracing', 'energy', 'jsonlog', 'share',
                'inference.tracing', 'inference.tail_sampling', 'inference.trace_export',
                'inference.energy', 'inference.metrics'):
        path = ROOT / (old.replace('.', '/') + '.py')
        assert not path.exists(), f'{path} is still there'


def _console_scripts() -> list:
    text = (REPO / 'setup.py').read_text()
    return re.findall(r"'([\w-]+) = (liquid_edge_ros_monitor[\w.]*):(\w+)'", text)


def test_setup_declares_the_executables_users_run():
    assert sorted(n for n, _, _ in _console_scripts()) == sorted(
        ['topic_monitor', 'node_monitor', 'liquid_inference', 'sim_robot', 'liquid-edge-monitor'])


@pytest.mark.parametrize('name, module, func', _console_scripts())
def test_each_console_script_points_at_a_module_with_its_function(name, module, func):
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, f'{name}: {module} not found'
    tree = ast.parse(Path(spec.origin).read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == func for n in tree.body), \
        f'{name}: {module} has no {func}()'
