"""The controller's fail-safe loop (pure): usable input, the stale policy, stamp gaps.

Each scenario is one a review measured on a running node (issue 17): a NaN sensor that kept the
input "fresh", a pre-outage command brought back by NaNs after the outage, and a jump in header
stamps integrated as one giant step.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import REPO
from liquid_edge_ros_monitor.inference.control_loop import STALE, ControlLoop
from liquid_edge_ros_monitor.inference.controller import NON_FINITE_INPUT, OK, Controller
from liquid_edge_ros_monitor.instrument.freshness import Freshness
from liquid_edge_ros_monitor.lnn import load_model

GOLDEN = REPO / 'test' / 'data' / 'lnn' / 'cfc_tanh_nobackbone.npz'   # 5 inputs -> 2 outputs
MS = 1_000_000
TIMEOUT_S = 0.5
GOOD = np.array([0.2, 0.1, 0.06, 9.8, 0.0], dtype=np.float32)
NAN = np.array([np.nan, 0.1, 0.06, 9.8, 0.0], dtype=np.float32)


@pytest.fixture(scope='module')
def model():
    return load_model(GOLDEN)


def make_loop(model, hold=True, on_input_stale='zero', repeat=False):
    """A loop and the events a node listening after it sees: ('stale', age, the command it
    sends once) and ('back',)."""
    controller = Controller(model, hold_on_non_finite=hold)
    loop = ControlLoop(controller, Freshness(TIMEOUT_S), dt0=0.005, dt_max=1.0,
                       on_input_stale=on_input_stale, repeat_stale=repeat)
    events = []
    loop.freshness.on_stale(lambda age: events.append(('stale', round(age, 3),
                                                       loop.stale_command)))
    loop.freshness.on_back(lambda: events.append(('back',)))
    return loop, events


def feed(loop, x, start_ms, n, period_ms=5):
    """n inputs at 200 Hz (per-message mode: each arrives when it is stepped); the commands."""
    out = []
    for i in range(n):
        t = (start_ms + i * period_ms) * MS
        out.append(loop.step(x, stamp_ns=t, arrival_ns=t, now_ns=t))
    return out


def test_a_non_finite_input_is_not_fresh_input(model):
    """on_non_finite hold: NaN inputs within input_timeout hold the last good command; after
    input_timeout without a usable input the stale policy applies (once without a control rate),
    whatever on_non_finite says."""
    loop, events = make_loop(model, hold=True)
    good = feed(loop, GOOD, 0, 20)
    held = good[-1][0]
    assert good[-1][1] == OK and np.abs(held).max() > 0
    nans = feed(loop, NAN, 100, 600)                # 3 s of NaN at 200 Hz, from t = 100 ms
    last_good_ms = 95
    within = [r for i, r in enumerate(nans) if 100 + 5 * i - last_good_ms <= 500]
    after = nans[len(within):]
    assert all(s == NON_FINITE_INPUT and np.array_equal(y, held) for y, s in within)
    assert all(s == STALE and y is None for y, s in after)
    assert loop.stale and loop.freshness.episodes == 1
    [(what, age, once)] = events                      # the zero command, sent once
    assert (what, age, once.tolist()) == ('stale', 0.505, [0.0, 0.0])


@pytest.mark.parametrize('policy', ['zero', 'stop'])
def test_going_stale_forgets_the_last_good_command(model, policy):
    """After an outage, inputs that come back as NaN never bring the pre-outage command back:
    they are not usable input, and the last good command was forgotten at the outage."""
    loop, _ = make_loop(model, hold=True, on_input_stale=policy)
    pre = feed(loop, GOOD, 0, 20)[-1][0]
    assert loop.freshness.check(now_ns=700 * MS)     # silence: the watchdog's tick
    command = loop.stale_command
    assert command is None if policy == 'stop' else command.tolist() == [0.0, 0.0]
    after = feed(loop, NAN, 800, 100)                # NaNs come back: still no usable input
    assert all(s == STALE and y is None for y, s in after)
    back = feed(loop, GOOD, 1400, 1)[0]              # usable input: a step from a reset state
    assert back[1] == OK and not np.array_equal(back[0], pre)
    y, s = feed(loop, NAN, 1405, 1)[0]               # hold now holds the post-outage command
    assert s == NON_FINITE_INPUT and np.array_equal(y, back[0])


def test_hold_on_stale_is_the_command_before_the_outage_and_is_repeated_at_a_control_rate(model):
    loop, _ = make_loop(model, hold=False, on_input_stale='hold', repeat=True)
    pre = feed(loop, GOOD, 0, 20)[-1][0]
    first = loop.step(NAN, 95 * MS, 95 * MS, 700 * MS)
    again = loop.step(NAN, 95 * MS, 95 * MS, 720 * MS)
    assert first[1] == again[1] == STALE
    assert np.array_equal(first[0], pre) and np.array_equal(again[0], pre)
    assert loop.controller.safe().tolist() == [0.0, 0.0]    # forgotten by the controller


def test_a_control_tick_on_an_old_input_is_stale(model):
    """With a control rate the same (finite) input is stepped at each tick; once it is older
    than input_timeout it is not usable, however finite."""
    loop, events = make_loop(model, repeat=True)
    arrival = 0
    assert loop.step(GOOD, 0, arrival, arrival)[1] == OK
    assert loop.step(GOOD, 0, arrival, 400 * MS)[1] == OK
    y, s = loop.step(GOOD, 0, arrival, 600 * MS)
    assert s == STALE and y.tolist() == [0.0, 0.0] and events[0][0] == 'stale'
    y, s = loop.step(GOOD, 0, arrival, 620 * MS)
    assert s == STALE and y.tolist() == [0.0, 0.0]          # repeated at the control rate
    assert loop.step(GOOD, 630 * MS, 630 * MS, 630 * MS)[1] == OK and events[-1] == ('back',)


def test_a_jump_in_header_stamps_is_a_gap_not_one_giant_step(model):
    """An NTP step of 200 s on the sensor host: the state is reset and the step gets the nominal
    period, counted as a gap; the input is still usable (it arrives on time)."""
    loop, _ = make_loop(model)
    dts = []
    forward = loop.controller.forward
    loop.controller.forward = lambda x, dt: (dts.append(dt), forward(x, dt))[1]   # observe only
    feed(loop, GOOD, 0, 10)
    resets = loop.controller.resets
    t = 50 * MS
    y, s = loop.step(GOOD, stamp_ns=t + 200_000 * MS, arrival_ns=t, now_ns=t)
    assert s == OK and loop.gap and loop.gaps == 1 and loop.last_gap_s == pytest.approx(200.0,
                                                                                         abs=0.01)
    assert dts[-1] == 0.005 and loop.controller.resets == resets + 1
    loop.step(GOOD, stamp_ns=t + 200_005 * MS, arrival_ns=t + 5 * MS, now_ns=t + 5 * MS)
    assert not loop.gap and dts[-1] == pytest.approx(0.005)   # stepping on from the new clock
    assert not loop.stale


def test_elapsed_time_spans_the_non_finite_inputs_that_were_skipped(model):
    loop, _ = make_loop(model)
    dts = []
    forward = loop.controller.forward
    loop.controller.forward = lambda x, dt: (dts.append(dt), forward(x, dt))[1]
    feed(loop, GOOD, 0, 2)
    feed(loop, NAN, 10, 4)
    feed(loop, GOOD, 30, 1)
    assert dts == [0.005, pytest.approx(0.005), pytest.approx(0.025)]


def test_an_unknown_policy_is_refused(model):
    with pytest.raises(ValueError, match="on_input_stale must be one of zero, hold, stop"):
        ControlLoop(Controller(model), Freshness(0.5), 0.005, 1.0, on_input_stale='coast')
