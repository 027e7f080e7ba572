"""A lean receive loop for raw subscriptions that keeps each message's MessageInfo.

Why not an rclpy executor: the rclpy `EventsExecutor` (the fast one) fails on callbacks that take a
MessageInfo in Kilted ("SystemError: null argument to internal routine"), and MessageInfo carries the
DDS timestamps and sequence numbers the monitor measures; the `SingleThreadedExecutor` delivers them
but tops out near a third of the raw rate on a 2-core machine (REFERENCE.md section 6). So the
monitor's subscriptions are hidden from the node's executor (`DetachedGroup`) and served here: one
thread, one wait set, and every ready subscription drained with `take_message` until empty. After a
busy wake-up the loop pauses `batch_s` (1 ms) so that wake-ups take batches at high rates.

The same thread calls `on_tick` every `tick_period` seconds; the topic monitor uses it to hand each
window's new rows to its statistics thread (a swap of one array per topic), so the handoff happens
on the thread that records and the hot path takes no lock.

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

from ..core.step_aside import StepAside

_log = logging.getLogger(__name__)

Handler = Callable[[bytes, Any], None]

#: Most messages taken from one subscription per wake-up.
DRAIN_LIMIT = 256

#: Default pause after a busy wake-up: at 20k msgs/s it turns ~20 wake-ups into one.
BATCH_S = 0.001

#: Each wake-up costs about 1.5 us per subscription in the wait set (filling it, rcl_wait over it,
#: reading what is ready: 1.5 ms with 1,001 subscriptions on a 2-core Xeon), whatever the number
#: of messages it finds. The pause after a busy wake-up grows with the set, so that with a thousand
#: topics the monitor spends its time on messages rather than on wake-ups...
PAUSE_PER_SUB_S = 5e-6
#: ... up to this: at 1 kHz, 10 ms is 10 messages, a tenth of a reader queue of the default depth.
MAX_BATCH_S = 0.010


class DetachedGroup(CallbackGroup):
    """A callback group that no executor will ever run: its entities are served by `RawReceiver`.

    rclpy's `CallbackGroup` keeps a weak reference to each entity added and never removes it (not
    when the subscription is destroyed): a monitor whose discovered topics come and go for days
    would keep one dead reference per subscription and event handler ever made. Dead ones are
    dropped here whenever the set has doubled since the last pass (amortised O(1) per add).
    """

    def __init__(self) -> None:
        super().__init__()
        self._prune_at = 64

    def add_entity(self, entity: Any) -> None:
        super().add_entity(entity)
        if len(self.entities) >= self._prune_at:
            # A new set, assigned whole: a reader iterating the old one is not disturbed.
            self.entities = {ref for ref in self.entities if ref() is not None}
            self._prune_at = max(64, 2 * len(self.entities))

    def can_execute(self, entity: Any) -> bool:
        return False

    def beginning_execution(self, entity: Any) -> bool:
        return False

    def ending_execution(self, entity: Any) -> None:
        pass


class RawReceiver:
    """Serves raw subscriptions on a dedicated thread and calls `handler(data, info)` per message."""

    def __init__(self, node: Node, on_tick: Callable[[], None], tick_period: float,
                 on_error: Optional[Callable[[Subscription, BaseException], None]] = None,
                 on_death: Optional[Callable[[BaseException], None]] = None,
                 on_full: Optional[Callable[[Subscription, int], None]] = None,
                 queue_depth: int = 0) -> None:
        self._node = node
        self._context = node.context
        # The context's handle, checked once: it outlives the node (a context shut down and
        # initialized again has a new handle, and needs new nodes anyway).
        handle = node.context.handle
        if handle is None:      # a node exists only in an initialized context
            raise RuntimeError('raw receiver: the node\'s context is not initialized')
        self._handle = handle
        self._on_tick = on_tick
        self._tick_ns = int(tick_period * 1e9)
        self._on_error = on_error
        self._on_death = on_death
        #: Called with (subscription, messages taken) after a take that emptied a full reader
        #: queue (at least `queue_depth` messages waiting): the monitor fell behind, and what the
        #: queue overwrote meanwhile is its own loss, not the topic's.
        self._on_full = on_full
        self._full_at = queue_depth if queue_depth > 0 else DRAIN_LIMIT + 1
        self._subs: Dict[Subscription, Handler] = {}
        self._lock = threading.Lock()
        self._changed = True
        self._stop = threading.Event()
        with self._handle:
            self._wake = _rclpy.GuardCondition(self._handle)
        self._thread = threading.Thread(target=self._run, name='raw_receiver', daemon=True)
        self.group = DetachedGroup()
        #: Pause after a wake-up that found messages (seconds; 0 disables). Arrival times come
        #: from DDS reception stamps, so batching costs no accuracy; the node sets it to 0 while
        #: sim time is active, when arrival is read from the clock at take time.
        self.batch_s = BATCH_S
        #: Paused on between wake-ups while a scrape has priority (`core/step_aside.py`).
        self.step_aside: Optional[StepAside] = None

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

    def alive(self) -> bool:
        """Running, or not started yet (stopped or died: False)."""
        return self._thread.ident is None or self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        try:
            self._wake.trigger_guard_condition()
        except Exception:  # the context may already be shut down; the wait times out then
            pass
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        held = ExitStack()
        try:
            self._loop(held)
        except BaseException as exc:  # the context went away under us (shutdown): end quietly
            if not self._stop.is_set() and self._context.ok():
                # Not a shutdown: the thread dies, and the node must say so where it is seen.
                if self._on_death is not None:
                    self._on_death(exc)
                else:
                    _log.error('receiver stopped: %s', exc)
        finally:
            held.close()

    def _entries(self, held: ExitStack) -> List[Tuple[Any, int, Subscription, Handler]]:
        """Enter every served subscription's handle (keeping it alive until the set changes:
        a destroy requested meanwhile is deferred by rclpy) and precompute what the loop needs."""
        held.close()
        with self._lock:
            items = list(self._subs.items())
            self._changed = False
        entries = []
        for sub, handler in items:
            try:
                held.enter_context(sub.handle)
            except Exception:   # already destroyed
                continue
            entries.append((sub.handle, sub.handle.pointer, sub, handler))
        return entries

    def pause_s(self, subscriptions: int) -> float:
        """The pause after a busy wake-up with `subscriptions` in the wait set (0: none)."""
        if not self.batch_s:
            return 0.0
        return max(self.batch_s, min(MAX_BATCH_S, PAUSE_PER_SUB_S * subscriptions))

    def _loop(self, held: ExitStack) -> None:
        entries: List[Tuple[Any, int, Subscription, Handler]] = []
        by_pointer: Dict[int, Tuple[Any, int, Subscription, Handler]] = {}
        wait_set = None
        next_tick = time.monotonic_ns() + self._tick_ns
        while not self._stop.is_set() and self._context.ok():
            if self._changed or wait_set is None:
                entries = self._entries(held)
                by_pointer = {e[1]: e for e in entries}
                with self._handle:
                    wait_set = _rclpy.WaitSet(len(entries), 1, 0, 0, 0, 0, self._handle)
            wait_set.clear_entities()
            for handle, _, _, _ in entries:
                wait_set.add_subscription(handle)
            wait_set.add_guard_condition(self._wake)
            wait_set.wait(max(0, next_tick - time.monotonic_ns()))
            if self._stop.is_set():
                return
            ready = wait_set.get_ready_entities('subscription')
            if ready:
                for pointer in ready:
                    entry = by_pointer.get(pointer)
                    if entry is not None:
                        self._drain(entry[0], entry[2], entry[3])
                pause = self.pause_s(len(entries))
                if pause:
                    # Let more messages queue up, so the next wake-up takes a batch.
                    time.sleep(pause)
                if self.step_aside is not None and self.batch_s:
                    # Not under sim time (batch_s 0), where arrival is read at take time.
                    self.step_aside.pause()
            now = time.monotonic_ns()
            if now >= next_tick:
                try:
                    self._on_tick()
                except Exception as exc:   # a failed tick must not stop the receiving
                    _log.error('receiver tick failed: %r', exc)
                next_tick += self._tick_ns
                if next_tick < now:      # we fell behind (e.g. suspended): don't burst ticks
                    next_tick = now + self._tick_ns

    def _drain(self, handle: Any, sub: Subscription, handler: Handler) -> None:
        take = handle.take_message
        msg_type = sub.msg_type
        n = 0
        try:
            # Bounded, so a flooding topic cannot starve the others or the tick.
            for n in range(DRAIN_LIMIT):
                taken = take(msg_type, True)
                if taken is None:
                    break
                handler(taken[0], taken[1])
            else:
                n = DRAIN_LIMIT
            if n >= self._full_at and self._on_full is not None:
                self._on_full(sub, n)
        except Exception as exc:   # one odd topic must not stop the others
            if self._on_error is not None:
                self._on_error(sub, exc)
