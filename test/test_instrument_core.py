"""The instrumentation's pure parts (no DDS): callback records, stages, errors, reported values."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from liquid_edge_ros_monitor.instrument.freshness import Freshness
from liquid_edge_ros_monitor.instrument.metrics import InferenceMetrics
from liquid_edge_ros_monitor.instrument.model_info import ModelInfo
from liquid_edge_ros_monitor.instrument.quality import (SMALL, SignalQuality, UnreadableValues,
                                                        all_finite, as_vector, flat_values, words)
from liquid_edge_ros_monitor.instrument.recorder import CallbackRecorder


def recorder(deadline_s: float = 0.0) -> CallbackRecorder:
    return CallbackRecorder('n.callback', {}, Freshness(1.0), InferenceMetrics('r', '/n'),
                            deadline_s=deadline_s)


def test_a_callback_is_timed_with_its_stages_and_counted():
    rec = recorder()
    cb = rec.begin()
    assert rec.current() is cb
    with rec.stage('preprocess'):
        pass
    with rec.stage('forward'):
        with rec.stage('inner'):
            pass
    rec.end(cb, ())
    assert rec.current() is None
    assert rec.metrics.inferences == 1 and rec.callback.count == 0   # the timer's work
    rec.drain()
    assert rec.callback.count == 1
    assert sorted(rec.stage_rings) == ['forward', 'inner', 'preprocess']
    assert all(r.count == 1 for r in rec.stage_rings.values())
    with rec.stage('outside'):          # no callback running: nothing recorded
        pass
    rec.drain()
    assert 'outside' not in rec.stage_rings and rec.callback.count == 1


def test_a_skipped_callback_is_not_counted_and_the_first_error_is_kept():
    rec = recorder()
    cb = rec.begin()
    cb.skipped = True
    rec.end(cb, ())
    rec.drain()
    assert rec.metrics.inferences == 0 and rec.callback.count == 0
    cb = rec.begin()
    rec.mark_error('non_finite_input')
    rec.mark_error('exception')
    assert cb.error == 'non_finite_input'
    rec.end(cb, ())
    rec.mark_error('late')              # no callback running: ignored
    assert rec.metrics.inferences == 1


def test_deadline_misses_against_the_configured_deadline():
    rec = recorder(deadline_s=1e-9)
    cb = rec.begin()
    rec.end(cb, ())
    assert rec.metrics.deadline_misses == 1 and rec.deadline() == 1e-9


def test_the_timer_gets_every_ended_callback_once_and_the_slots_are_emptied():
    """`end` hands the callback over; `drain` (the update timer) turns each one into its
    latencies exactly once, and lets go of it: the next callbacks write into empty slots."""
    rec = recorder()
    for n in (3, 0, 1):
        for _ in range(n):
            cb = rec.begin()
            with rec.stage('forward'):
                pass
            rec.end(cb, ())
        before = rec.callback.count
        rec.drain()
        assert rec.callback.count - before == n
        assert rec.stage_rings.get('forward') is None or rec.stage_rings['forward'].count == \
            rec.callback.count
        assert rec.finished.take() == [] and all(x is None for x in rec.finished._slots)
    assert rec.callback.take_new().size == 4 and (rec.callback.take_new().size == 0)


def test_a_monitor_inside_another_marks_its_own_callback():
    """Two monitors, one's callback running inside the other's (a node that wraps a helper it
    also instruments): stages and errors go to the callback of the monitor they are called on."""
    outer_rec, inner_rec = recorder(), recorder()
    outer = outer_rec.begin()
    inner = inner_rec.begin()
    with outer_rec.stage('outer_stage'):
        outer_rec.mark_error('exception')
    assert outer_rec.current() is outer and inner_rec.current() is inner
    assert [m[0] for m in outer.stages] == ['outer_stage'] and inner.stages == []
    assert outer.error == 'exception' and inner.error is None
    inner_rec.end(inner, ())
    assert outer_rec.current() is outer and inner_rec.current() is None
    outer_rec.end(outer, ())
    assert outer_rec.current() is None


def test_an_untraced_callback_draws_no_trace_ids():
    rec = recorder()                    # no exporter: nothing is ever kept
    cb = rec.begin()
    assert cb.trace_ids() is None
    rec.end(cb, ())


def test_a_callback_without_reported_inputs_is_itself_the_sign_of_input():
    rec = recorder()
    assert rec.freshness.input_age_s(0) is None
    cb = rec.begin()
    rec.end(cb, ())
    assert rec.freshness.input_age_s(cb.t0) == 0.0


class FakeTensor:
    """Duck-typed like a torch tensor on a device, with gradients."""

    def __init__(self, values):
        self._v = np.asarray(values, dtype=np.float32)

    def detach(self):
        return self

    def cpu(self):
        return self

    def numpy(self):
        return self._v


@pytest.mark.parametrize('values', [[1.0, 2.0], (1, 2), np.array([[1.0], [2.0]]),
                                    FakeTensor([1.0, 2.0]), np.float32(1.5)])
def test_reported_values_of_any_kind(values):
    v = as_vector(values)
    assert v.ndim == 1 and v.dtype.kind == 'f' and np.isfinite(v).all()


def test_a_tensor_with_gradients_or_on_a_device_goes_through_detach_and_cpu():
    class GradTensor(FakeTensor):
        def numpy(self):
            if not getattr(self, 'detached', False):
                raise RuntimeError("Can't call numpy() on Tensor that requires grad")
            return super().numpy()

        def detach(self):
            self.detached = True
            return self
    assert as_vector(GradTensor([[1.0, np.nan]])).tolist()[0] == 1.0


@pytest.mark.parametrize('values', [[1.0, 2.0], (1, 2), [[1.0], [2.0]], np.array([[1.0], [2.0]]),
                                    np.arange(2.0).reshape(1, 1, 2), FakeTensor([1.0, 2.0]),
                                    np.float32(1.5), 3, np.array(2.0)])
def test_few_values_become_a_flat_list_and_many_a_flat_array(values):
    """The cheap path (a list of Python numbers) for what callbacks usually report, the array
    for the rest: the same numbers either way."""
    v = flat_values(values)
    assert list(np.asarray(v, dtype=np.float64)) == list(as_vector(values).astype(np.float64))
    many = np.linspace(0.0, 1.0, SMALL + 1)
    assert isinstance(flat_values(many), np.ndarray) and flat_values(many).size == SMALL + 1
    assert isinstance(flat_values(many.tolist()), np.ndarray)
    assert isinstance(flat_values([np.array([1.0, 2.0])]), np.ndarray)   # arrays inside a list


def test_a_reported_list_is_copied_since_the_input_ring_keeps_it():
    q = SignalQuality(InferenceMetrics('r', '/n'), ModelInfo(name='m'), 10, 0.05, 10, 0.5,
                      logging.getLogger('t'))
    mine = [1.0, 2.0]
    assert q.check_inputs(mine)
    mine[0] = 99.0                      # the node reuses its list for the next message
    assert q.inputs.take_new().tolist() == [[1.0, 2.0]]


@pytest.mark.parametrize('values', [
    [1.0, 2.0], [1.0, 2, True], [1.0, np.float32(2.5)], [1.0, float('nan')], [1.0, float('inf')],
    [0.5] * SMALL, [1.0, [2.0]], [1.0, 'a'], [1.0, '2.5'], [1.0, None]])
def test_a_list_of_floats_is_judged_as_the_general_path_judges_it(values):
    """check_inputs/check_outputs read a list starting with a float on a path of their own; a
    tuple of the same values takes flat_values' general one. Same answers, same ring rows."""
    def judged(vals):
        q = SignalQuality(InferenceMetrics('r', '/n'), ModelInfo(name='m'), 10, 0.05, 10, 0.5,
                          logging.getLogger('t'))
        try:
            answers = (q.check_inputs(vals), q.check_outputs(vals))
        except UnreadableValues as exc:
            return 'unreadable', exc.short.replace('tuple', 'list')
        return answers, q.inputs.take_new().tolist()
    assert judged(values) == judged(tuple(values))


@pytest.mark.filterwarnings('ignore:invalid value encountered in dot')   # the module's own filter,
@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])                 # pytest sets its own
def test_every_kind_of_non_finite_value_is_found_in_lists_and_arrays(bad):
    for n in (3, SMALL + 5):
        for dtype in (np.float32, np.float64):
            x = np.zeros(n, dtype=dtype)
            assert all_finite(flat_values(x))
            x[n - 1] = bad
            assert not all_finite(flat_values(x)), (n, dtype)
    assert all_finite(flat_values(np.arange(5)))          # integers are always finite


@pytest.mark.filterwarnings('ignore::numpy.exceptions.ComplexWarning')   # the drift ring's
def test_a_complex_array_is_judged_as_before_not_an_error_in_the_users_callback():
    q = SignalQuality(InferenceMetrics('r', '/n'), ModelInfo(name='m'), 10, 0.05, 10, 0.5,
                      logging.getLogger('t'))
    assert q.check_inputs(np.array([1 + 2j, 3j])) and q.check_outputs(np.array([1j]))
    assert not q.check_inputs(np.array([1 + 2j, complex(np.nan, 0)]))


def test_torch_tensors_are_read_through_tolist_with_gradients_too():
    torch = pytest.importorskip('torch')         # installed by run_tests.sh (the example's)
    x = torch.tensor([[[0.5, float('nan'), 2.0]]], requires_grad=True)
    assert flat_values(x)[0] == 0.5 and not all_finite(flat_values(x))
    assert isinstance(flat_values(torch.zeros(SMALL + 1)), np.ndarray)


def test_errors_are_counted_placed_and_logged_once_per_interval(caplog):
    metrics = InferenceMetrics('r', '/n')
    log = logging.getLogger('liquid_edge_ros_monitor.test_quality')
    q = SignalQuality(metrics, ModelInfo(name='m'), 10, 0.05, 10, 0.5, log)
    with caplog.at_level(logging.INFO, logger=log.name):
        for _ in range(50):
            q.report('step_failed', 'XlaRuntimeError: device lost')
        q.report('stamp_gap', '3.2 s')
        q.report('my_reason')
    assert metrics.errors['step_failed'] == 50 and metrics.errors['my_reason'] == 1
    assert [r.levelname for r in caplog.records] == ['ERROR', 'WARNING', 'ERROR']
    assert caplog.records[0].getMessage() == 'network step failed: XlaRuntimeError: device lost'
    assert q.recent('inputs', q.problems['inputs'][2]) == ('stamp_gap', '3.2 s')
    assert q.recent('outputs', q.problems['outputs'][2]) == ('my_reason', '')
    assert q.recent('outputs', q.problems['outputs'][2] + int(6e9)) is None
    assert words('my_reason') == 'my reason'


def test_accuracy_only_against_fresh_truth_of_the_same_size():
    q = SignalQuality(InferenceMetrics('r', '/n'), ModelInfo(name='m'), 10, 0.05, 10, 0.5,
                      logging.getLogger('t'))
    assert q.check_outputs([0.3, 0.2], now_ns=0) and q.accuracy.count == 0
    q.set_truth([0.3, 0.2], now_ns=0)
    assert q.check_outputs([0.31, 0.2], now_ns=int(0.4e9)) and q.accuracy.value == 1.0
    q.check_outputs([0.5, 0.2], now_ns=int(0.6e9))            # truth too old: not scored
    q.check_outputs([0.5], now_ns=int(0.1e9))                 # another size: not scored
    assert q.accuracy.count == 1
    assert not q.check_outputs([np.inf, 0.2], now_ns=0)
