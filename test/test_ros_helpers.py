"""The test helpers' own contract where a wrong helper would hide a failure or make one up:
`answer` asks again while a service call has no answer (a lost reply, rmw_fastrtps#842)."""
from __future__ import annotations

import threading
from typing import List

import pytest
from rclpy.task import Future

from ros_helpers import answer


def test_answer_asks_again_until_a_reply_comes_and_drops_the_unanswered_requests():
    sent: List[Future] = []

    def send() -> Future:
        future: Future = Future()
        sent.append(future)
        if len(sent) == 3:       # the third request is answered, from another thread
            threading.Timer(0.05, future.set_result, ('reply',)).start()
        return future

    assert answer(send, 'a get', timeout=10, attempt=0.2) == 'reply'
    assert len(sent) == 3
    assert [f.cancelled() for f in sent] == [True, True, False]


def test_answer_fails_naming_the_call_when_nothing_answers():
    sent: List[Future] = []

    def send() -> Future:
        sent.append(Future())
        return sent[-1]

    with pytest.raises(AssertionError, match=r'no answer to /ns/node: get \[.x.\] in 1 s'):
        answer(send, "/ns/node: get ['x']", timeout=1, attempt=0.3)
    assert 3 <= len(sent) <= 5 and all(f.cancelled() for f in sent)
