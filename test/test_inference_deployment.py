"""Changing the model of a running liquid_inference (issue 20): swaps through `SetParameters` (what
`ros2 param set` calls), a shadow model on the real inputs, automatic rollback.

The node runs in its own process fed by sim_robot's 200 Hz IMU; the test sets parameters through
the node's parameter service, reads its commands over DDS and its metrics over HTTP.
"""
from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pytest

from conftest import REPO, free_port, wait_for
from ros_helpers import DiagnosticsListener, ParameterClient, sample_value, samples, scrape
from test_inference_node import GOLDEN, SIM, Counter, start_inference

from liquid_edge_ros_monitor.lnn import load_model, save_model
from liquid_edge_ros_monitor.lnn.model import Model
from liquid_edge_ros_monitor.lnn.weights import (check_hyper, expected_shapes,
                                                 inspect_model_files, read_model_files)


def copy_of_golden(tmp: Path, name: str) -> Path:
    """The same network under another name and sha256 (a retrained model of the same shape)."""
    m = load_model(GOLDEN)
    t = m.tensors()
    t['fc.bias'] = t['fc.bias'] + np.float32(0.01)
    out = tmp / f'{name}.npz'
    save_model(Model(m.hyper, t, training={'version': name}), out)
    return out


def overflowing(tmp: Path) -> Path:
    """Finite weights whose outputs overflow to inf once the state moves: NaN for some inputs."""
    m = load_model(GOLDEN)
    t = m.tensors()
    t['fc.weight'] = np.full_like(t['fc.weight'], 3e38)
    out = tmp / 'overflow.npz'
    save_model(Model(m.hyper, t), out)
    return out


def slow(tmp: Path) -> Path:
    """The golden's inputs and outputs with a far bigger network (about 2 ms a step here, against
    15 us: over ten times the callback)."""
    hyper = check_hyper(tmp, {'cell': 'cfc', 'mode': 'default', 'n_inputs': 5, 'units': 512,
                              'proj_size': 2, 'backbone_units': 2048, 'backbone_layers': 3})
    rng = np.random.default_rng(0)
    t = {k: (rng.standard_normal(s) * 0.02).astype(np.float32)
         for k, s in expected_shapes(hyper).items()}
    out = tmp / 'slow.npz'
    save_model(Model(hyper, t), out)
    return out


class Stack:
    """liquid_inference + sim_robot in their own processes; commands and a parameter client here."""

    def __init__(self, ros_process: Any, ns: str, *params: str) -> None:
        self.ns = ns
        self.port = free_port()
        self.counter = Counter(ns)
        self.node = start_inference(ros_process, ns, '-p', 'tracing.enabled:=false',
                                    '-p', f'metrics_port:={self.port}', *params)
        ros_process('liquid_edge_ros_monitor.sim_robot', '--ros-args', '-r', f'__ns:={ns}', *SIM)
        self.params = ParameterClient(f'{ns}/liquid_inference')
        wait_for(lambda: len(self.counter.commands) > 50, 40, 'commands flowing')

    def set(self, name: str, value: Any) -> Any:
        return self.params.set(name, value)

    def get(self, name: str) -> Any:
        return self.params.get(name).string_value

    def metric(self, name: str, **labels: str) -> Optional[float]:
        return sample_value(scrape(self.port), name, **labels)

    def model_sha256(self) -> str:
        [labels] = [dict(k[1]) for k in samples(scrape(self.port))
                    if k[0] == 'liquid_edge_model_info']
        return labels['sha256']

    def close(self) -> None:
        self.params.close()
        self.counter.close()


def test_inspecting_a_model_reads_no_tensor_data_and_agrees_with_reading_it(tmp_path):
    for path in (GOLDEN, REPO / 'models' / 'imu_velocity.npz',
                 REPO / 'test' / 'data' / 'lnn' / 'ltc_wiring_autoncp.npz'):
        assert inspect_model_files(path)['hyper'] == read_model_files(path)['hyper']
    bad = tmp_path / 'nan.npz'
    m = load_model(GOLDEN)
    t = m.tensors()
    t['fc.bias'] = t['fc.bias'].copy()
    t['fc.bias'][0] = np.nan
    save_model(Model(m.hyper, t), bad)
    inspect_model_files(bad)                     # values are not read: no error
    with pytest.raises(ValueError, match="tensor 'fc.bias': 1 NaN/Inf value"):
        read_model_files(bad)


def test_preparing_retrained_weights_compiles_nothing_and_a_new_architecture_compiles(tmp_path):
    """Why a swap of retrained weights has no gap (bench/model_change.py): its preparation runs
    the program already compiled for the running model; only a new architecture compiles (on XLA's
    threads, beside the control loop)."""
    from liquid_edge_ros_monitor.inference import loading

    def prepare(path: Path, n_in: int) -> Any:
        return loading.load_for_controller(str(path), n_in, 2, False, lambda m: 0.005)
    running = prepare(GOLDEN, 5)
    before = loading.compilations()
    retrained = prepare(copy_of_golden(tmp_path, 'v2'), 5)
    assert loading.compilations() == before
    x = np.array([0.1, -0.2, 0.3, 0.05, 1.0], np.float32)
    y_running, _ = running.controller.forward(x, 0.005)
    y_retrained, _ = retrained.controller.forward(x, 0.005)
    assert y_retrained[0] == pytest.approx(y_running[0] + 0.01, abs=1e-5)    # its fc.bias
    prepare(slow(tmp_path), 5)
    assert loading.compilations() > before


def test_a_new_architecture_prepared_beside_a_running_loop_is_compiled_by_a_child(tmp_path,
                                                                                 monkeypatch):
    """A swap's preparation (`apart`): a new architecture's program comes from a child process
    at nice 19 (no compilation in this process) and gives the numbers of the model's own step;
    when the child fails, the model is compiled here and says why."""
    import jax.numpy as jnp

    from liquid_edge_ros_monitor.inference import loading
    from liquid_edge_ros_monitor.lnn import compile_apart

    def prepare(model: Model, name: str) -> Any:
        path = tmp_path / f'{name}.npz'
        save_model(model, path)
        return loading.prepare(loading.check_model(str(path), model.n_inputs, model.n_outputs),
                               False, lambda m: 0.005, apart=True)
    golden = load_model(GOLDEN)
    bigger = dict(golden.hyper, units=golden.units + 3)
    rng = np.random.default_rng(1)
    model = Model(bigger, {k: (rng.standard_normal(s) * 0.1).astype(np.float32)
                           for k, s in expected_shapes(bigger).items()})
    before = loading.compilations()
    loaded = prepare(model, 'bigger')
    assert loaded.compiled_by == 'compiled by a child process'
    assert loading.compilations() == before
    h = model.init_state()
    for x in np.random.default_rng(2).standard_normal((5, 5)).astype(np.float32):
        y, _ = loaded.controller.forward(x, 0.005)
        h, y_ref = model.step(model.params, h, jnp.asarray(x), jnp.float32(0.005))
        np.testing.assert_allclose(y, np.asarray(y_ref), rtol=1e-5, atol=1e-6)
    again = dict(golden.hyper, units=golden.units + 4)
    monkeypatch.setattr(compile_apart, 'CHILD_TIMEOUT_S', 0.001)      # the child cannot finish
    fallback = prepare(Model(again, {k: np.zeros(s, np.float32)
                                     for k, s in expected_shapes(again).items()}), 'again')
    assert fallback.compiled_by.startswith('compiled here (compile child:'), fallback.compiled_by
    assert 'timed out' in fallback.compiled_by
    assert loading.compilations() > before


def test_a_good_model_swaps_in_and_stays(ros, ros_process, tmp_path):
    new = copy_of_golden(tmp_path, 'v2')
    stack = Stack(ros_process, '/dep_good', '-p', 'rollback.window:=2.0')
    listener = DiagnosticsListener('test_dep_good_listener')
    try:
        sha_old = stack.model_sha256()
        result = stack.set('model_path', str(new))
        assert result.successful, result.reason
        wait_for(lambda: stack.metric('liquid_edge_model_info', model='v2') == 1, 20,
                 'the new model_info')
        assert stack.metric('liquid_edge_model_info', sha256=sha_old) is None
        assert stack.metric('liquid_edge_model_swaps_total', result='ok') == 1
        n = len(stack.counter.commands)
        wait_for(lambda: len(stack.counter.commands) > n + 400, 20, 'two more seconds of commands')
        assert all(math.isfinite(v) for c in stack.counter.commands for v in c)
        wait_for(lambda: 'kept: no bound breached' in stack.node.output(), 10, 'the window closed')
        assert stack.get('model_path') == str(new)
        assert sum(stack.metric('liquid_edge_model_rollbacks_total', reason=r) or 0
                   for r in ('non_finite', 'latency', 'accuracy', 'divergence')) == 0
        wait_for(lambda: 'swapped to v2' in str(listener.values('liquid_inference: model')), 10,
                 'the swap on the model status')
        assert listener.level('liquid_inference: model') == 0
    finally:
        listener.close()
        stack.close()


def test_a_model_that_fails_its_check_is_refused_with_one_line(ros, ros_process, tmp_path):
    wrong = tmp_path / 'wrong_inputs.npz'
    shutil.copy(REPO / 'models' / 'imu_velocity.npz', wrong)     # 3 inputs, the node has 5
    shutil.copy(REPO / 'models' / 'imu_velocity.json', wrong.with_suffix('.json'))
    stack = Stack(ros_process, '/dep_bad')
    try:
        for value, fragment in ((str(wrong), 'takes 3 inputs'),
                                (str(tmp_path / 'missing.npz'), 'not found')):
            result = stack.set('model_path', value)
            assert not result.successful and fragment in result.reason, result.reason
            assert '\n' not in result.reason and 'model_path' in result.reason
        assert stack.get('model_path') == str(GOLDEN)                 # unchanged
        n = len(stack.counter.commands)
        wait_for(lambda: len(stack.counter.commands) > n + 100, 10, 'the old model still runs')
        assert stack.metric('liquid_edge_model_swaps_total', result='ok') == 0
    finally:
        stack.close()


def test_a_model_that_outputs_non_finite_values_is_rolled_back(ros, ros_process, tmp_path):
    bad = overflowing(tmp_path)
    stack = Stack(ros_process, '/dep_nan', '-p', 'rollback.window:=30.0')
    listener = DiagnosticsListener('test_dep_nan_listener')
    try:
        result = stack.set('model_path', str(bad))
        assert result.successful, result.reason
        wait_for(lambda: stack.metric('liquid_edge_model_rollbacks_total',
                                      reason='non_finite') == 1, 20, 'a rollback')
        assert all(math.isfinite(v) for c in stack.counter.commands for v in c)
        wait_for(lambda: stack.get('model_path') == str(GOLDEN), 10, 'model_path reverted')
        assert stack.metric('liquid_edge_model_info', model='cfc_tanh_nobackbone') == 1
        n = len(stack.counter.commands)
        wait_for(lambda: len(stack.counter.commands) > n + 50 and
                 stack.counter.commands[-1] != (0.0, 0.0), 10, 'the old model commanding')
        wait_for(lambda: listener.level('liquid_inference: model') == 1, 10, 'model WARN')
        assert 'rolled back from overflow' in listener.message('liquid_inference: model')
    finally:
        listener.close()
        stack.close()


def test_a_model_ten_times_slower_is_rolled_back_on_latency(ros, ros_process, tmp_path):
    heavy = slow(tmp_path)
    stack = Stack(ros_process, '/dep_slow', '-p', 'latency_budget:=0.001',
                  '-p', 'rollback.window:=30.0')
    try:
        result = stack.set('model_path', str(heavy))
        assert result.successful, result.reason
        wait_for(lambda: stack.metric('liquid_edge_model_rollbacks_total',
                                      reason='latency') == 1, 40, 'a rollback on latency')
        wait_for(lambda: stack.get('model_path') == str(GOLDEN), 10, 'model_path reverted')
        assert 'callback p95 above the latency budget' in stack.node.output()
    finally:
        stack.close()


def test_a_shadow_runs_on_the_same_inputs_never_commands_and_is_promoted(ros, ros_process,
                                                                         tmp_path):
    candidate = copy_of_golden(tmp_path, 'candidate')
    bad = overflowing(tmp_path)
    stack = Stack(ros_process, '/dep_shadow', '-p', 'rollback.window:=0.0')
    listener = DiagnosticsListener('test_dep_shadow_listener')
    try:
        assert stack.set('shadow_model_path', str(bad)).successful
        wait_for(lambda: (stack.metric('liquid_edge_shadow_errors_total',
                                       reason='non_finite_output') or 0) > 50, 20,
                 'the overflowing shadow failing')
        # Its non-finite outputs never reach a command: the active model commands.
        assert all(math.isfinite(v) for c in stack.counter.commands for v in c)
        assert stack.counter.commands[-1] != (0.0, 0.0)
        wait_for(lambda: listener.level('liquid_inference: shadow') == 2, 10, 'shadow ERROR')
        assert stack.set('shadow_model_path', str(candidate)).successful
        wait_for(lambda: (stack.metric('liquid_edge_shadow_agreement', shadow='candidate',
                                       model='candidate') or 0) > 0.9, 20, 'agreement')
        wait_for(lambda: (stack.metric('liquid_edge_shadow_output_difference_count',
                                       shadow='candidate', output='output0') or 0) > 0, 10,
                 'output differences')
        assert stack.metric('liquid_edge_shadow_skipped_total', shadow='candidate') is not None
        compiled = stack.metric('liquid_edge_jit_compilations_total')
        assert stack.set('model_path', str(candidate)).successful   # promote it
        wait_for(lambda: stack.metric('liquid_edge_model_info', model='candidate') == 1, 20,
                 'the candidate active')
        assert stack.metric('liquid_edge_jit_compilations_total') == compiled   # no compile
        assert stack.metric('liquid_edge_shadow_info', shadow='candidate') is None
    finally:
        listener.close()
        stack.close()


def test_the_rollback_guard_judges_after_the_warm_up():
    """Pure: a failure rolls back at once; latency after min_samples; accuracy and agreement
    only from a settled state (the first min_samples outputs of a reset state do not count)."""
    from liquid_edge_ros_monitor.instrument.stats import Accuracy
    from liquid_edge_ros_monitor.inference.rollback import RollbackBounds, RollbackGuard
    bounds = RollbackBounds(window_s=30.0, latency_budget_s=0.005, min_accuracy=0.85,
                            accuracy_tolerance=0.05, min_agreement=0.9, min_samples=10)
    g = RollbackGuard(bounds, started_ns=0)
    truth = np.array([0.3, 0.2])
    warm_ends = [g.note(False, 0.001, np.array([9.0, 9.0]), truth) for _ in range(10)]
    assert warm_ends == [False] * 9 + [True]           # wrong while warming up: not counted
    assert g.accuracy.count == 0 and g.breach() is None
    for _ in range(9):
        g.note(False, 0.001, truth + 0.01, truth)
    assert g.breach() is None                         # 9 counted: not judged yet
    g.note(False, 0.001, np.array([1.0, 1.0]), truth)
    assert g.accuracy.count == 10 and g.breach() is None      # 0.9 >= 0.85
    agree = Accuracy(0.05, 100)
    for _ in range(10):
        agree.add(np.array([0.0]), np.array([1.0]))
    assert g.breach(agree) == 'divergence'
    slow = RollbackGuard(bounds, 0)
    for _ in range(10):
        slow.note(False, 0.02)
    assert slow.breach() == 'latency'
    failed = RollbackGuard(bounds, 0)
    failed.note(True, 0.001)
    assert failed.breach() == 'non_finite'
    assert g.open(29_000_000_000) and not g.open(31_000_000_000)
