"""A lean receive loop for raw subscriptions that keeps each message's MessageInfo.

Why not an rclpy executor: the rclpy `EventsExecutor` (the fast one) fails on callbacks that take a
MessageInfo in Kilted ("SystemError: null argument to internal routine"), and MessageInfo carries the
DDS timestamps and sequence numbers the monitor measures; the `SingleThreadedExecutor` delivers them
but tops out near a third of the raw rate on a 2-core machine (REFERENCE.md section 6). So the
monitor's subscriptions are hidden from the node's executor (`DetachedGroup`) and served here: one
thread, one wait set, and every ready subscription drained with `take_message` until empty.

The same thread runs `on_tick` every `tick_period` seconds, so statistics are computed on the thread
that records them and need no lock.

This uses rclpy's implementation module (`_rclpy.WaitSet`, `_rclpy.GuardCondition`), the same calls
the rclpy executors make; it is kept to this one module.
"""
from __future__ import annotations

import logging
import threading
import time
from contextlib import ExitStack
from typing import Any, Callable, Dict, List, Optional, Tuple

from rclpy.callback_groups import CallbackGroup
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.node import Node
from rclpy.subscription import Subscription

_log = logging.getLogger(__name__)

Handler = Callable[[bytes, Any], None]

#: Most messages taken from one subscription per wake-up.
DRAIN_LIMIT = 256


class DetachedGroup(CallbackGroup):
    """A callback group that no executor will ever run: its entities are served by `RawReceiver`."""

    def can_execute(self, entity: Any) -> bool:
        return False

    def beginning_execution(self, entity: Any) -> bool:
        return False

    def ending_execution(self, entity: Any) -> None:
        pass


class RawReceiver:
    """Serves raw subscriptions on a dedicated thread and calls `handler(data, info)` per message."""

    def __init__(self, node: Node, on_tick: Callable[[], None], tick_period: float,
                 on_error: Optional[Callable[[Subscription, BaseException], None]] = None) -> None:
        self._node = node
        self._context = node.context
        self._on_tick = on_tick
        self._tick_ns = int(tick_period * 1e9)
        self._on_error = on_error
        self._subs: Dict[Subscription, Handler] = {}
        self._lock = threading.Lock()
        self._changed = True
        self._stop = threading.Event()
        with self._context.handle:
            self._wake = _rclpy.GuardCondition(self._context.handle)
        self._thread = threading.Thread(target=self._run, name='raw_receiver', daemon=True)
        self.group = DetachedGroup()

    def add(self, sub: Subscription, handler: Handler) -> None:
        """Serve `sub` (created with ``callback_group=receiver.group`` and ``raw=True``)."""
        with self._lock:
            self._subs[sub] = handler
            self._changed = True
        self._wake.trigger_guard_condition()

    def remove(self, sub: Subscription) -> None:
        """Stop serving `sub`; it may be destroyed right after (rclpy defers that while in use)."""
        with self._lock:
            self._subs.pop(sub, None)
            self._changed = True
        self._wake.trigger_guard_condition()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        try:
            self._wake.trigger_guard_condition()
        except Exception:  # the context may already be shut down; the wait times out then
            pass
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # the context went away under us (shutdown): end quietly
            if not self._stop.is_set() and self._context.ok():
                _log.error('receiver stopped: %s', exc)

    def _loop(self) -> None:
        wait_set = None
        subs: List[Tuple[Subscription, Handler]] = []
        next_tick = time.monotonic_ns() + self._tick_ns
        while not self._stop.is_set() and self._context.ok():
            if self._changed:
                with self._lock:
                    subs = list(self._subs.items())
                    self._changed = False
                with self._context.handle:
                    wait_set = _rclpy.WaitSet(len(subs), 1, 0, 0, 0, 0, self._context.handle)
            timeout = max(0, next_tick - time.monotonic_ns())
            with ExitStack() as held:
                live = []
                for sub, handler in subs:
                    try:
                        held.enter_context(sub.handle)
                    except Exception:   # destroyed since the list was taken
                        continue
                    live.append((sub, handler))
                wait_set.clear_entities()
                for sub, _ in live:
                    wait_set.add_subscription(sub.handle)
                wait_set.add_guard_condition(self._wake)
                wait_set.wait(timeout)
                if self._stop.is_set():
                    return
                ready = wait_set.get_ready_entities('subscription')
                if ready:
                    for sub, handler in live:
                        if sub.handle.pointer in ready:
                            self._drain(sub, handler)
            if time.monotonic_ns() >= next_tick:
                self._on_tick()
                next_tick += self._tick_ns
                now = time.monotonic_ns()
                if next_tick < now:      # we fell behind (e.g. suspended): don't burst ticks
                    next_tick = now + self._tick_ns

    def _drain(self, sub: Subscription, handler: Handler) -> None:
        take = sub.handle.take_message
        msg_type = sub.msg_type
        try:
            # Bounded, so a flooding topic cannot starve the others or the tick.
            for _ in range(DRAIN_LIMIT):
                taken = take(msg_type, True)
                if taken is None:
                    return
                handler(taken[0], taken[1])
        except Exception as exc:   # one odd topic must not stop the others
            if self._on_error is not None:
                self._on_error(sub, exc)
