"""core/step_aside.py: other threads wait while a job has priority, bounded per job and in share."""
import threading
import time

from liquid_edge_ros_monitor.core.step_aside import StepAside


def test_pause_returns_at_once_without_a_job():
    gate = StepAside(max_s=60.0)
    gate.pause()                       # would hang a minute if it waited


def test_a_pausing_thread_resumes_when_the_job_ends():
    gate = StepAside(max_s=60.0)
    entered, release, resumed = threading.Event(), threading.Event(), threading.Event()

    def job():
        with gate.priority():
            entered.set()
            release.wait(10)

    def background():
        entered.wait(10)
        gate.pause()
        resumed.set()

    threads = [threading.Thread(target=job), threading.Thread(target=background)]
    for t in threads:
        t.start()
    assert entered.wait(10)
    assert not resumed.wait(0.2)           # held while the job runs ...
    release.set()
    assert resumed.wait(10)                # ... and let go when it ends, not after max_s
    for t in threads:
        t.join(10)


def test_a_thread_pauses_once_per_job_and_not_again_within_the_gap():
    gate = StepAside(max_s=1.0, gap_s=60.0)
    with gate.priority():
        start = time.monotonic()
        gate.pause()                            # the one pause of this job: max_s (job runs on)
        assert time.monotonic() - start >= 0.9
        again = time.monotonic()
        gate.pause()                            # same job: no second pause
        assert time.monotonic() - again < 0.5
    with gate.priority():                       # a new job within the gap: no pause either,
        again = time.monotonic()                # so back-to-back scrapes cannot stop a thread
        gate.pause()
        assert time.monotonic() - again < 0.5


def test_overlapping_jobs_hold_until_the_last_ends():
    gate = StepAside(max_s=60.0)
    with gate.priority():
        with gate.priority():
            pass
        assert not gate._clear.is_set()
    assert gate._clear.is_set()
