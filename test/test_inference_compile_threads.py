"""Keeping XLA's compile threads off the control loop's core (threads and affinity, no ROS)."""
from __future__ import annotations

import os
import threading

from liquid_edge_ros_monitor.inference.compile_threads import Confined, started_by, thread_ids


def _parked_thread() -> tuple:
    """A thread that waits until released: (thread, its native id, the release event)."""
    release, started = threading.Event(), threading.Event()
    tid = []

    def run() -> None:
        tid.append(threading.get_native_id())
        started.set()
        release.wait(30)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert started.wait(10)
    return t, tid[0], release


def test_the_threads_a_call_starts_are_found_and_no_others():
    t_before, tid_before, release_before = _parked_thread()
    try:
        (t, tid, release), found = started_by(_parked_thread)
        try:
            assert found == {tid}
            assert tid_before in thread_ids() and tid_before not in found
        finally:
            release.set()
            t.join(10)
    finally:
        release_before.set()
        t_before.join(10)


def test_confined_threads_share_one_core_and_get_their_own_affinity_back():
    cpus = os.sched_getaffinity(0)
    t, tid, release = _parked_thread()
    mine = threading.get_native_id()
    try:
        with Confined(frozenset({tid, 2 ** 31 - 7})):      # and one that no longer exists
            inside = (os.sched_getaffinity(tid), os.sched_getaffinity(mine))
        if len(cpus) > 1:
            assert inside == ({max(cpus)}, {max(cpus)})
        else:
            assert inside == (cpus, cpus)                   # one core: nothing to move
        assert os.sched_getaffinity(tid) == cpus and os.sched_getaffinity(mine) == cpus
    finally:
        release.set()
        t.join(10)


def test_a_failing_preparation_still_restores_the_affinity():
    cpus = os.sched_getaffinity(0)
    try:
        with Confined(frozenset()):
            raise ValueError('the model did not load')
    except ValueError:
        pass
    assert os.sched_getaffinity(threading.get_native_id()) == cpus
