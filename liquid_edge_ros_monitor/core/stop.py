"""One stop request from however many SIGINT/SIGTERM arrive, so a process stops cleanly every time.

`ros2 launch` forwards SIGINT to its children when it is not attached to a terminal, after the
process group may already have had one (systemd, containers, scripts), then SIGTERM; people press
Ctrl-C twice. rclpy's own handlers turn the first signal into a context shutdown and leave the
default handler during clean-up, so the second one killed the process or raised a traceback in
the middle of `destroy_node`. Here the first signal only asks for a stop, the main loop sees it
within its poll period, and every later signal is ignored while the process cleans up (bounded by
its own timeouts: metrics endpoint, tracing flush).

During start-up (`interruptible()`: rclpy.init, model warm-up, first discovery) the first signal
raises `StartupInterrupted` instead, so the process does not finish a long start just to stop.
Where Python cannot raise (the signal lands in a garbage-collector callback, such as JAX's, or a
`__del__`), the exception is "ignored" by the interpreter: our unraisable hook keeps that quiet
(no traceback on the terminal), and `interruptible()` raises it at the end of the phase instead,
since the stop is requested all the same.

An exception raised between two statements is more than some library code survives: JAX's
backend initialisation starts a 60 s `threading.Timer` (not a daemon) and cancels it in a
`finally` that begins only after `start()` returns; a signal during `start()` skipped the cancel,
and the interpreter's exit then waited for the timer (`liquid-edge-monitor run` stopped during
start-up hung past 20 s, about 1 in 60 on a loaded 2-core VM). Such steps run `shielded()`: a
signal there is kept and ends the phase when the step is done.
Pure: only `signal`, `sys` and `threading`, no ROS.
"""
from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from typing import Any, Iterator, Optional

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


#: The handlers installed in this process (signals are the process's; `shielded` needs them).
_installed: Optional['StopSignals'] = None


class StartupInterrupted(BaseException):
    """A stop signal arrived while the process was still starting (a stop, not an error)."""


class StopSignals:
    """Installed once in the main thread; `event` is set by the first SIGINT or SIGTERM."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum = 0
        self._interruptible = False

    def install(self) -> 'StopSignals':
        global _installed
        _installed = self
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_signal)
        previous = sys.unraisablehook

        def quiet_stop(unraisable: Any) -> None:
            if not isinstance(unraisable.exc_value, StartupInterrupted):
                previous(unraisable)
        sys.unraisablehook = quiet_stop
        return self

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self.event.is_set():
            return                      # a second or third signal: already stopping
        self.signum = signum
        self.event.set()
        if self._interruptible:
            self._interruptible = False
            raise StartupInterrupted()

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """A start-up phase that the first signal aborts (raises `StartupInterrupted`)."""
        if self.event.is_set():
            raise StartupInterrupted()
        self._interruptible = True
        try:
            yield
        finally:
            self._interruptible = False
        if self.event.is_set():     # the signal came where it could not raise (see above)
            raise StartupInterrupted()

    @contextmanager
    def shielded(self) -> Iterator[None]:
        """A step of an interruptible phase that a signal must not cut short (see the module
        docstring): the signal is kept, and `StartupInterrupted` raised when the step is done.
        Outside an interruptible phase, or on another thread, it changes nothing."""
        if not self._interruptible or threading.current_thread() is not threading.main_thread():
            yield
            return
        self._interruptible = False
        try:
            yield
        finally:
            self._interruptible = True
        if self.event.is_set():
            self._interruptible = False
            raise StartupInterrupted()

    def requested(self) -> bool:
        return self.event.is_set()

    def finish(self) -> None:
        """The process is done: ignore stop signals for good. Python resets the handlers it
        installed to the default (terminate) at interpreter exit, and XLA and DDS teardown after
        that takes long enough for a late SIGINT to end the process with -2; an ignored signal
        stays ignored."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)


@contextmanager
def shielded() -> Iterator[None]:
    """`StopSignals.shielded` of the handlers installed in this process, if any: for library code
    that knows nothing of who installed them (`inference/loading.py`)."""
    stop = _installed
    if stop is None:
        yield
    else:
        with stop.shielded():
            yield
