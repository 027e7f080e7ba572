"""colcon builds the package and installs it where `ros2 run` and `ros2 launch` look.

The package source (what a user clones into `src/`) is copied to a temporary directory and built
there with the venv's colcon (colcon-ros, ament_python build type), so nothing is written into the
repository. The install space is then checked file by file, and the installed `topic_monitor`
executable is started the way `ros2 run` starts it.
"""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Set

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = 'liquid_edge_ros_monitor'
EXECUTABLES = ('topic_monitor', 'node_monitor', 'liquid_inference', 'sim_robot',
               'liquid-edge-monitor')
# What a user's checkout holds (the tests too: `colcon test` runs them); not .venv, build
# outputs or caches.
SOURCE_ITEMS = ('package.xml', 'setup.py', 'setup.cfg', 'resource', PACKAGE, 'launch', 'config',
                'models', 'test', 'pytest.ini', 'docs', 'README.md', 'bench', 'tools')
COLCON = Path(sys.executable).parent / 'colcon'


def _build_outputs_in_repo() -> Set[str]:
    """What a colcon or setuptools build leaves behind, wherever it is in the repository (outside
    .git and .venv): build/, install/, log/ and *.egg-info, with their modification times."""
    skip = {'.git', '.venv', '.venv-jazzy', '.pytest_cache', '__pycache__'}
    out = set()
    for root, dirs, _files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in skip]
        for d in dirs:
            if d in ('build', 'install', 'log') or d.endswith('.egg-info'):
                path = Path(root) / d
                out.add(f'{path.relative_to(REPO)}@{path.stat().st_mtime_ns}')
    return out


def _ros_env(**extra: str) -> Dict[str, str]:
    """The environment for a ROS process: discovery on this host, a domain in 31..40."""
    env = os.environ.copy()
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    domain = env.get('ROS_DOMAIN_ID', '')
    if not (domain.isdigit() and 31 <= int(domain) <= 40):
        env['ROS_DOMAIN_ID'] = str(31 + os.getpid() % 10)
    env.update(extra)
    return env


class Install:
    """The colcon install space of the package built from a copy of the source."""

    def __init__(self, tmp: Path) -> None:
        self.src = tmp / 'src' / PACKAGE
        self.base = tmp / 'install'
        self.prefix = self.base / PACKAGE
        self.lib = self.prefix / 'lib' / PACKAGE
        self.share = self.prefix / 'share' / PACKAGE

    @property
    def site_packages(self) -> Path:
        found = sorted(self.prefix.glob('lib/python3.*/site-packages'))
        assert len(found) == 1, f'expected one site-packages under {self.prefix}/lib, found {found}'
        return found[0]

    def python_env(self) -> Dict[str, str]:
        """What sourcing install/setup.bash gives: the package on AMENT_PREFIX_PATH and PYTHONPATH,
        then the entries this interpreter already uses (rclpy and the other wheels), except the
        repository's own source, so that the package is found in the install space first (the
        venv's editable install of the repository comes after it; the import test checks this)."""
        inherited = [p for p in sys.path
                     if p and Path(p).resolve() != REPO and Path(p).is_dir()]
        return _ros_env(
            PYTHONPATH=os.pathsep.join([str(self.site_packages), *inherited]),
            AMENT_PREFIX_PATH=os.pathsep.join(
                [str(self.prefix)] + [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(
                    os.pathsep) if p]),
            PYTHONDONTWRITEBYTECODE='1')


@pytest.fixture(scope='module')
def install(tmp_path_factory: pytest.TempPathFactory) -> Install:
    tmp = tmp_path_factory.mktemp('colcon')
    inst = Install(tmp)
    inst.src.mkdir(parents=True)
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc', '*.egg-info', '.pytest_cache')
    for item in SOURCE_ITEMS:
        path = REPO / item
        if path.is_dir():
            shutil.copytree(path, inst.src / item, ignore=ignore)
        elif path.is_file():
            shutil.copy2(path, inst.src / item)

    assert COLCON.is_file(), f'{COLCON} is missing: the venv needs colcon-core and colcon-ros'
    before = _build_outputs_in_repo()
    env = os.environ.copy()
    env['COLCON_HOME'] = str(tmp / 'colcon_home')  # no user defaults or mixins
    env.pop('COLCON_DEFAULTS_FILE', None)
    cmd = [str(COLCON), '--log-base', str(tmp / 'log'), 'build',
           '--base-paths', str(tmp / 'src'),
           '--build-base', str(tmp / 'build'), '--install-base', str(inst.base),
           '--event-handlers', 'console_direct-']
    proc = subprocess.run(cmd, cwd=tmp, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=300)
    assert proc.returncode == 0, f'colcon build failed ({proc.returncode}):\n{proc.stdout}'
    after = _build_outputs_in_repo()
    assert after == before, f'the build wrote into the repository: {sorted(after ^ before)}'
    return inst


def _console_scripts() -> Set[str]:
    """The console_scripts names declared in setup.py's setup(entry_points=...)."""
    tree = ast.parse((REPO / 'setup.py').read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg == 'entry_points':
                    scripts = ast.literal_eval(kw.value)['console_scripts']
                    return {spec.split('=', 1)[0].strip() for spec in scripts}
    raise AssertionError('setup.py: no literal entry_points in setup()')


def test_executables_installed_where_ros2_run_looks(install: Install) -> None:
    assert set(EXECUTABLES) <= _console_scripts()
    for name in EXECUTABLES:
        path = install.lib / name
        assert path.is_file(), f'{path} missing; installed: {sorted(os.listdir(install.lib))}'
        assert os.access(path, os.X_OK), f'{path} is not executable'


def test_share_files_installed_where_ros2_launch_looks(install: Install) -> None:
    assert (install.share / 'package.xml').is_file()
    marker = install.prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / PACKAGE
    assert marker.is_file(), f'ament index marker {marker} missing: ament_index cannot find us'
    for name in ('monitor.launch.py', 'demo.launch.py'):
        assert (install.share / 'launch' / name).is_file(), f'launch/{name} not installed'
    source_launch = {p.name for p in (REPO / 'launch').glob('*.launch.py')}
    assert {p.name for p in (install.share / 'launch').glob('*.launch.py')} == source_launch

    source_yaml = {p.name for p in (REPO / 'config').glob('*.yaml')}
    assert source_yaml, 'config/ holds no .yaml files'
    installed_yaml = {p.name for p in (install.share / 'config').glob('*.yaml')}
    assert installed_yaml == source_yaml
    # Alerting, dashboards and the demo model travel with the package (share/, not site-packages).
    for sub, pattern in (('config/prometheus', '*.yml'), ('config/grafana', '*.json'),
                         ('config/alertmanager', '*.yml'), ('config/alertmanager/templates', '*.tmpl'),
                         ('models', '*.npz'), ('models', '*.json')):
        source = {p.name for p in (REPO / sub).glob(pattern)}
        assert source, f'{sub} holds no {pattern}'
        assert {p.name for p in (install.share / sub).glob(pattern)} == source, sub


def test_installed_inference_node_finds_the_shipped_model(install: Install) -> None:
    """The default model path resolves to share/<pkg>/models in the install space."""
    probe = ('from liquid_edge_ros_monitor.inference.loading import default_model_path\n'
             'from liquid_edge_ros_monitor.lnn import load_model\n'
             'p = default_model_path(); print(p); print(load_model(p).describe())')
    proc = subprocess.run([sys.executable, '-c', probe], cwd=install.base,
                          env=install.python_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    path, desc = proc.stdout.split('\n')[:2]
    assert path.startswith(str(install.share)) and desc.startswith('CfC/default 3 in')


def test_modules_and_entry_points_load_from_install_space(install: Install) -> None:
    modules = sorted(f'{PACKAGE}.{p.stem}' for p in (REPO / PACKAGE).glob('*.py')
                     if p.stem != '__init__')
    probe = '\n'.join([
        'import importlib, importlib.metadata as md, sys',
        f'prefix = {str(install.prefix)!r}',
        f'for name in {[PACKAGE] + modules!r}:',
        '    mod = importlib.import_module(name)',
        '    assert mod.__file__.startswith(prefix), (name, mod.__file__)',
        f"dist = md.distribution({PACKAGE!r})",
        "assert str(dist.locate_file('')).startswith(prefix), dist.locate_file('')",
        "eps = [e for e in dist.entry_points if e.group == 'console_scripts']",
        'for e in eps:',
        '    e.load()',
        "print(' '.join(sorted(e.name for e in eps)))",
    ])
    proc = subprocess.run([sys.executable, '-c', probe], cwd=install.base,
                          env=install.python_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f'import from the install space failed:\n{proc.stderr}'
    assert set(proc.stdout.split()) == set(EXECUTABLES)
    # PEP 561: without the marker, a user's type checker skips the package as untyped.
    assert (install.site_packages / PACKAGE / 'py.typed').is_file(), 'py.typed not installed'


def test_installed_topic_monitor_reports_bad_parameter_in_one_line(install: Install) -> None:
    """`ros2 run liquid_edge_ros_monitor topic_monitor --ros-args -p window:=-1.0` fails cleanly."""
    exe = install.lib / 'topic_monitor'
    proc = subprocess.run([str(exe), '--ros-args', '-p', 'window:=-1.0'], cwd=install.base,
                          env=install.python_env(), capture_output=True, text=True, timeout=60)
    lines = [line for line in proc.stderr.splitlines() if line.strip() and '[RTPS_' not in line]
    detail = f'rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}'
    assert proc.returncode == 2, detail
    assert len(lines) == 1 and "parameter 'window'" in lines[0], detail


def test_colcon_test_runs_the_pytest_suite(install: Install) -> None:
    """A ROS user's standard `colcon test` runs our pytest suite and `colcon test-result` counts
    its tests. Without a pytest test dependency in setup.py colcon picked no pytest step and
    reported "Ran 0 tests ... OK" (issue 12). Here only the pure cdr and stats tests run: the rest
    of the suite (DDS, Prometheus, this colcon build) is what `./run_tests.sh` runs."""
    ws = install.src.parents[1]
    env = os.environ.copy()
    env['COLCON_HOME'] = str(ws / 'colcon_home')
    env.pop('COLCON_DEFAULTS_FILE', None)
    results = ws / 'test_results'
    proc = subprocess.run(
        [str(COLCON), '--log-base', str(ws / 'log'), 'test', '--base-paths', str(ws / 'src'),
         '--build-base', str(ws / 'build'), '--install-base', str(install.base),
         '--test-result-base', str(results), '--event-handlers', 'console_direct-',
         '--pytest-args', '-k', 'cdr or stats', '-p', 'no:cacheprovider'],
        cwd=ws, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout
    report = subprocess.run([str(COLCON), 'test-result', '--test-result-base', str(results)],
                            cwd=ws, env=env, capture_output=True, text=True, timeout=60)
    summary = report.stdout.strip().splitlines()[-1] if report.stdout.strip() else ''
    import re
    m = re.match(r'Summary: (\d+) tests, (\d+) errors, (\d+) failures', summary)
    assert m, f'{report.stdout}\n{report.stderr}\n{proc.stdout}'
    assert int(m.group(1)) >= 20 and m.group(2) == m.group(3) == '0', report.stdout
