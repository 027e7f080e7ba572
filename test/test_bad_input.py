"""Bad input at start-up: one line naming the thing, exit 2, in every executable (issue 12 §2).

Each case would have been a many-line traceback (RCLError from rclpy.init, rclpy's
InvalidParameterTypeException) or a silent default (`[]` handed over as unset) before.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO, own_lines

ENTRY = [sys.executable, '-m', 'liquid_edge_ros_monitor.entry']
EXECUTABLES = ['sim_robot', 'topic_monitor', 'node_monitor', 'liquid_inference']

PARAMS_FILES = {
    'missing': (None, 'params file not found'),
    'not_yaml': ('a: [1, 2\n', 'not valid YAML at line 2'),
    'top_level_list': ('- a\n- b\n', "not a mapping of '<node name>: ros__parameters:' sections"),
    'tab': ('/**/x:\n\tros__parameters: {}\n', 'not valid YAML at line 2'),
}


def run(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([*ENTRY, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, stdin=subprocess.DEVNULL)


def one_line(p: subprocess.CompletedProcess) -> str:
    lines = own_lines(p.stderr)
    assert p.returncode == 2 and len(lines) == 1, (p.returncode, p.stderr)
    assert 'Traceback' not in p.stderr + p.stdout
    return lines[0]


@pytest.mark.parametrize('case', sorted(PARAMS_FILES))
@pytest.mark.parametrize('executable', EXECUTABLES)
def test_a_bad_params_file_is_one_line_naming_it(tmp_path, executable, case):
    content, problem = PARAMS_FILES[case]
    path = tmp_path / 'params.yaml'
    if content is not None:
        path.write_text(content)
    line = one_line(run(executable, '--ros-args', '--params-file', str(path)))
    assert line.startswith(f'{executable}: error: {path}: ') and problem in line, line


@pytest.mark.parametrize('executable', EXECUTABLES)
def test_an_rclpy_parameter_of_the_wrong_type_is_one_line(executable):
    line = one_line(run(executable, '--ros-args', '-p', 'use_sim_time:=1'))
    assert line.startswith(f'{executable}: error: ') and "'use_sim_time'" in line, line


@pytest.mark.parametrize('param, problem', [
    ('features', "parameter 'features': must list at least one field path"),
    ('outputs', "parameter 'outputs': must list at least one field path"),
])
def test_an_empty_list_that_makes_no_sense_is_refused(param, problem):
    """rclpy hands `[]` over as unset: it used to start with the default fields silently."""
    line = one_line(run('liquid_inference', '--ros-args', '-p', f'{param}:=[]',
                        '-p', 'metrics_port:=-1'))
    assert problem in line, line


def test_an_empty_list_that_means_none_is_honoured(ros_process):
    """`discovery.include: []` discovers nothing (it used to log `discovering ['.*']`)."""
    from conftest import wait_for
    p = ros_process('liquid_edge_ros_monitor.entry', 'topic_monitor', '--ros-args',
                    '-p', 'discovery.include:=[]', '-p', 'metrics_port:=-1')
    line = wait_for(lambda: next((ln for ln in p.output().splitlines()
                                  if 'monitoring ' in ln), None), 60, 'the start-up line')
    assert 'discovering [] except' in line, line
    assert p.stop() == 0


@pytest.mark.parametrize('env, args', [
    ({'OTEL_SDK_DISABLED': 'true'}, []),
    ({}, ['-p', 'tracing.enabled:=false']),
])
def test_disabled_tracing_starts_with_an_invalid_endpoint(ros_process, monkeypatch, env, args):
    """Settings that will not be used never stop the controller (it used to refuse to start)."""
    from conftest import wait_for
    monkeypatch.setenv('OTEL_EXPORTER_OTLP_ENDPOINT', 'localhost:4317')   # no scheme: invalid
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    p = ros_process('liquid_edge_ros_monitor.entry', 'liquid_inference', '--ros-args',
                    '-p', 'metrics_port:=-1', *args)
    wait_for(lambda: '; tracing off' in p.output() or p.proc.poll() is not None, 90,
             'the controller to start')
    assert '; tracing off' in p.output(), p.output()
    assert p.stop() == 0
