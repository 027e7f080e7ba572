"""`core/stop.py` without processes: one stop request from many signals, and a start-up phase that a
signal ends even when it lands where Python cannot raise (a garbage-collector callback)."""
from __future__ import annotations

import gc
import signal
import sys
import threading
from types import SimpleNamespace

import pytest

from liquid_edge_ros_monitor.core.stop import STOP_SIGNALS, StartupInterrupted, StopSignals


@pytest.fixture
def stop():
    handlers = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    hook = sys.unraisablehook
    try:
        yield StopSignals().install()
    finally:
        for sig, h in handlers.items():
            signal.signal(sig, h)
        sys.unraisablehook = hook


def test_the_first_signal_requests_a_stop_and_the_rest_are_ignored(stop):
    assert not stop.requested()
    stop._on_signal(signal.SIGTERM, None)
    stop._on_signal(signal.SIGINT, None)
    assert stop.requested() and stop.signum == signal.SIGTERM


def test_a_signal_during_start_up_ends_the_phase(stop):
    with pytest.raises(StartupInterrupted):
        with stop.interruptible():
            stop._on_signal(signal.SIGINT, None)
            raise AssertionError('the phase went on after the signal')


def test_a_signal_inside_a_gc_callback_is_quiet_and_still_ends_the_phase(stop, capsys):
    """JAX registers a gc callback; a signal handled there raises into the collector, which can
    only print it ("Exception ignored in ... Traceback"). Seen in CI: the demo stopped during
    start-up with that traceback on its terminal."""
    def callback(phase, _info):
        if phase == 'start' and not stop.requested():
            stop._on_signal(signal.SIGINT, None)
    gc.callbacks.append(callback)
    try:
        with pytest.raises(StartupInterrupted):
            with stop.interruptible():
                gc.collect()
    finally:
        gc.callbacks.remove(callback)
    err = capsys.readouterr().err
    assert 'Traceback' not in err and 'Exception ignored' not in err, err


def test_only_the_stop_is_kept_quiet_other_unraisable_exceptions_reach_the_previous_hook():
    handlers = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    hook = sys.unraisablehook
    seen = []
    sys.unraisablehook = lambda unraisable: seen.append(unraisable.exc_value)
    try:
        StopSignals().install()
        for exc in (ValueError('from a destructor'), StartupInterrupted()):
            sys.unraisablehook(SimpleNamespace(exc_value=exc))
    finally:
        for sig, h in handlers.items():
            signal.signal(sig, h)
        sys.unraisablehook = hook
    assert [type(e) for e in seen] == [ValueError]


def test_a_signal_in_a_shielded_step_waits_for_the_step_then_ends_the_phase(stop):
    """Library code with a `finally` it must reach (JAX's backend start cancels a timer there)
    finishes; the stop comes right after it."""
    done = []
    with pytest.raises(StartupInterrupted):
        with stop.interruptible():
            with stop.shielded():
                try:
                    stop._on_signal(signal.SIGINT, None)
                    done.append('body')
                finally:
                    done.append('finally')
            done.append('after the step')
    assert done == ['body', 'finally'] and stop.requested()


def test_a_shielded_step_outside_a_phase_or_off_the_main_thread_changes_nothing(stop):
    with stop.shielded():               # not starting up: nothing to shield, nothing raised
        stop._on_signal(signal.SIGINT, None)
    assert stop.requested()
    fresh = StopSignals().install()
    seen = []
    with pytest.raises(StartupInterrupted):
        with fresh.interruptible():
            worker = threading.Thread(target=lambda: seen.append(_shield_on(fresh)))
            worker.start()
            worker.join()
            fresh._on_signal(signal.SIGINT, None)      # the phase is interruptible as before
    assert seen == [True]


def _shield_on(stop: StopSignals) -> bool:
    """Whether the phase stayed interruptible while another thread ran a shielded step."""
    with stop.shielded():
        return stop._interruptible
