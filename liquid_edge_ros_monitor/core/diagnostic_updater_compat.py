"""Our own implementation of the part of `diagnostic_updater` (ros/diagnostics, ROS 2) that we use.

The real `diagnostic_updater` Python package has no wheel, so a pip-only install cannot get it. This
module provides the same names with the same behaviour, written from the upstream contract (no upstream
code is copied). Import it through `liquid_edge_ros_monitor.diagnostics`, which prefers the real
package.

API subset (camelCase as upstream):

- `DiagnosticStatusWrapper(**fields)`, a `diagnostic_msgs/DiagnosticStatus`:
  `summary(lvl, msg)` / `summary(status)` (msg passed through `str()`), `clearSummary()`,
  `mergeSummary(lvl, msg)` / `mergeSummary(status)`, `add(key, value)`.
- `DiagnosticTask(name)` with `getName()` and `run(stat) -> stat`; `FunctionDiagnosticTask(name, fn)`;
  `CompositeDiagnosticTask(name)` with `addTask(task)`.
- `Updater(node, period=1.0)`: `add(task)` / `add(name, fn)`, `removeByName(name) -> bool`, `update()`,
  `force_update()`, `broadcast(lvl, msg)`, `setHardwareID(hwid)`, `period` (property; setting it
  restarts the timer), `publish(status or list)`, attributes `publisher`, `verbose`, `hwid`.

Upstream behaviour reproduced:

- Levels are `bytes` of length 1 (`DiagnosticStatus.OK == b'\\x00'` ... `STALE == b'\\x03'`) and are
  compared as bytes.
- `mergeSummary` keeps the higher level. When the new level and the current level are both non-OK *or
  both OK*, the messages are joined with `'; '` (no separator while the current message is empty);
  when exactly one of them is OK, the OK one's message is dropped. (This is what the Python code does;
  its docstring and the C++ version say an OK message merged into an OK status is ignored. We follow
  the Python code, because that is what our nodes get on a real install.)
- `CompositeDiagnosticTask.run` gives every child the summary the composite was called with, lets each
  child add key/values to the same status, merges the children's summaries into a fresh (OK, '') summary
  and puts that on the status.
- `Updater` declares `diagnostic_updater.period` (double, default `period`) and
  `diagnostic_updater.use_fqn` (bool, default False), each only if the node has not declared it already
  (so `automatically_declare_parameters_from_overrides=True` nodes work). It publishes
  `diagnostic_msgs/DiagnosticArray` on `/diagnostics` (QoS: reliable, volatile, keep last 1) from a node
  timer (ROS time, the node's default callback group). Every task starts as ERROR
  'No message was set' with the hardware id; names are prefixed `'<node name>: '` (the fully qualified
  name with `use_fqn`). With no tasks it publishes an empty array each period. Adding a task publishes
  that task at once as OK 'Node starting up'. `force_update()` is `update()`. A task that raises
  propagates out of the timer callback, as upstream. An empty hardware id is warned about once, only
  while every status is OK.

Deliberate differences from upstream:

- Stamps: `header.stamp` comes from the node's clock, so `use_sim_time` works (ros/diagnostics #210,
  #217 are about the updater ignoring sim time). A publish whose stamp would have `sec == 0` (sim time
  before the first /clock message) is skipped: the aggregator warns about zero stamps.
- Field types are checked: `DiagnosticStatusWrapper` is created with `check_fields=True` and `add()`
  makes a checked `KeyValue`, so a non-`bytes` level or a non-`str` value raises `AssertionError` where
  it is set (as upstream does under `ROS_PYTHON_CHECK_FIELDS=1`). Without that variable upstream takes
  both silently: `add('rate', 3.2)` then makes the timer callback's `publish()` raise TypeError, and an
  int level is published but breaks `mergeSummary` (int vs bytes) and the OK tests. Being strict here
  means code that passes our tests also works upstream. Always give strings and the level constants.
- `publish()` does not rename the statuses passed to it (upstream prefixes their `name` in place).
- `broadcast()` fills in the hardware id (upstream leaves it empty) and reads the task list under the
  lock.
- The task list lock is re-entrant, so a task may add or remove tasks from inside `run()`.
- Setting `period` destroys the old timer before creating the new one (upstream's setter leaves the old
  timer running).
"""
from __future__ import annotations

import threading
from typing import Any, Callable, List, Sequence, Union

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

OK = DiagnosticStatus.OK
WARN = DiagnosticStatus.WARN
ERROR = DiagnosticStatus.ERROR
STALE = DiagnosticStatus.STALE

TaskFunction = Callable[['DiagnosticStatusWrapper'], 'DiagnosticStatusWrapper']

PERIOD_PARAMETER = 'diagnostic_updater.period'
USE_FQN_PARAMETER = 'diagnostic_updater.use_fqn'
DIAGNOSTICS_TOPIC = '/diagnostics'

__all__ = [
    'OK', 'WARN', 'ERROR', 'STALE',
    'DiagnosticStatusWrapper', 'DiagnosticTask', 'FunctionDiagnosticTask',
    'CompositeDiagnosticTask', 'DiagnosticTaskVector', 'Updater',
]


class DiagnosticStatusWrapper(DiagnosticStatus):
    """A `DiagnosticStatus` with helpers to set its level, message and key/values."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault('check_fields', True)
        super().__init__(*args, **kwargs)

    def summary(self, *args) -> None:
        """`summary(lvl, msg)` sets level and message (`str(msg)`); `summary(status)` copies them."""
        if len(args) == 1:
            self.level = args[0].level
            self.message = args[0].message
        elif len(args) == 2:
            self.level = args[0]
            self.message = str(args[1])
        else:
            raise TypeError(f'summary() takes (status) or (lvl, msg), got {len(args)} arguments')

    def clearSummary(self) -> None:  # noqa: N802 (upstream name)
        """Level OK, empty message."""
        self.summary(OK, '')

    def mergeSummary(self, *args) -> None:  # noqa: N802 (upstream name)
        """Merge `(lvl, msg)` or a status into this summary: the higher level wins, see module doc."""
        if len(args) == 1:
            lvl, msg = args[0].level, args[0].message
        elif len(args) == 2:
            lvl, msg = args
        else:
            raise TypeError(f'mergeSummary() takes (status) or (lvl, msg), got {len(args)} arguments')
        if (lvl > OK) == (self.level > OK):
            self.message = self.message + '; ' + msg if self.message else msg
        elif lvl > self.level:
            self.message = msg
        if lvl > self.level:
            self.level = lvl

    def add(self, key: str, val: str) -> None:
        """Append a key/value pair. `val` must already be a `str` (upstream does not convert)."""
        self.values.append(KeyValue(key=key, value=val, check_fields=True))


class DiagnosticTask:
    """Base class of a named diagnostic check; `run(stat)` fills in `stat` and returns it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def getName(self) -> str:  # noqa: N802 (upstream name)
        return self.name

    def run(self, stat: DiagnosticStatusWrapper) -> DiagnosticStatusWrapper:
        return stat


class FunctionDiagnosticTask(DiagnosticTask):
    """A task whose `run` is `fn(stat) -> stat`."""

    def __init__(self, name: str, fn: TaskFunction) -> None:
        super().__init__(name)
        self.fn = fn

    def run(self, stat: DiagnosticStatusWrapper) -> DiagnosticStatusWrapper:
        return self.fn(stat)


class CompositeDiagnosticTask(DiagnosticTask):
    """Several tasks reported as one status: highest level, messages merged, all key/values kept."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.tasks: List[DiagnosticTask] = []

    def addTask(self, t: DiagnosticTask) -> None:  # noqa: N802 (upstream name)
        self.tasks.append(t)

    def run(self, stat: DiagnosticStatusWrapper) -> DiagnosticStatusWrapper:
        incoming = DiagnosticStatusWrapper()
        incoming.summary(stat)
        merged = DiagnosticStatusWrapper()
        for task in self.tasks:
            stat.summary(incoming)      # every child starts from the summary we were given
            stat = task.run(stat)
            merged.mergeSummary(stat)
        stat.summary(merged)
        return stat


class _NamedTask:
    """How a vector holds a task: its name and a function that fills a status."""

    __slots__ = ('name', 'fn')

    def __init__(self, name: str, fn: TaskFunction) -> None:
        self.name = name
        self.fn = fn

    def run(self, stat: DiagnosticStatusWrapper) -> DiagnosticStatusWrapper:
        stat.name = self.name
        return self.fn(stat)


class DiagnosticTaskVector:
    """A list of tasks that other threads may change while it is being run."""

    def __init__(self) -> None:
        self.tasks: List[_NamedTask] = []
        self.lock = threading.RLock()

    def addedTaskCallback(self, task: _NamedTask) -> None:  # noqa: N802 (upstream name)
        """Called (under the lock) after a task was added."""

    def add(self, *args) -> None:
        """`add(task)` for a `DiagnosticTask`, or `add(name, fn)`."""
        if len(args) == 1:
            task = _NamedTask(args[0].getName(), args[0].run)
        elif len(args) == 2:
            task = _NamedTask(args[0], args[1])
        else:
            raise TypeError(f'add() takes (task) or (name, fn), got {len(args)} arguments')
        with self.lock:
            self.tasks.append(task)
            self.addedTaskCallback(task)

    def removeByName(self, name: str) -> bool:  # noqa: N802 (upstream name)
        """Remove the first task called `name`; True if there was one."""
        with self.lock:
            for i, task in enumerate(self.tasks):
                if task.name == name:
                    del self.tasks[i]
                    return True
        return False


class Updater(DiagnosticTaskVector):
    """Runs its tasks on a timer and publishes their statuses on /diagnostics (see module doc)."""

    def __init__(self, node, period: float = 1.0) -> None:
        super().__init__()
        self.node = node
        self.verbose = False
        self.hwid = ''
        self.warn_nohwid_done = False
        self.publisher = node.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 1)
        self.period_parameter = PERIOD_PARAMETER
        self.__period = float(self._parameter(PERIOD_PARAMETER, float(period)))
        use_fqn = bool(self._parameter(USE_FQN_PARAMETER, False))
        self.node_name = node.get_fully_qualified_name() if use_fqn else node.get_name()
        self._zero_stamp_skips = 0
        self.timer = node.create_timer(self.__period, self.update)

    def _parameter(self, name: str, default):
        if self.node.has_parameter(name):
            return self.node.get_parameter(name).value
        return self.node.declare_parameter(name, default).value

    @property
    def period(self) -> float:
        return self.__period

    @period.setter
    def period(self, period: float) -> None:
        with self.lock:
            self.__period = float(period)
            self.node.destroy_timer(self.timer)
            self.timer = self.node.create_timer(self.__period, self.update)

    def setHardwareID(self, hwid: str) -> None:  # noqa: N802 (upstream name)
        self.hwid = hwid

    def update(self) -> None:
        """Run every task and publish the statuses."""
        statuses = []
        warn_nohwid = not self.hwid
        with self.lock:
            for task in self.tasks:
                stat = DiagnosticStatusWrapper()
                stat.level = ERROR
                stat.name = task.name
                stat.message = 'No message was set'
                stat.hardware_id = self.hwid
                stat = task.run(stat)
                statuses.append(stat)
                if stat.level != OK:
                    warn_nohwid = False
                    if self.verbose:
                        self.node.get_logger().warning(
                            f'Non-zero diagnostic status. Name: {stat.name}, status {stat.level[0]}: '
                            f'{stat.message}')
        if warn_nohwid and not self.warn_nohwid_done:
            self.node.get_logger().warning(
                'diagnostic_updater: No HW_ID was set. Call setHardwareID() (use "none" for a node '
                'without hardware).')
            self.warn_nohwid_done = True
        self.publish(statuses)

    def force_update(self) -> None:
        """Publish now, whatever the timer."""
        self.update()

    def broadcast(self, lvl: bytes, msg: str) -> None:
        """Publish every task's name with the same level and message (e.g. on shutdown)."""
        with self.lock:
            names = [task.name for task in self.tasks]
        statuses = []
        for name in names:
            stat = DiagnosticStatusWrapper()
            stat.name = name
            stat.hardware_id = self.hwid
            stat.summary(lvl, msg)
            statuses.append(stat)
        self.publish(statuses)

    def publish(self, msg: Union[DiagnosticStatus, Sequence[DiagnosticStatus]]) -> bool:
        """Publish one status or a list, names prefixed `<node>: `. False if skipped (stamp sec 0)."""
        statuses: List[Any] = list(msg) if isinstance(msg, (list, tuple)) else [msg]
        stamp = self.node.get_clock().now().to_msg()
        if stamp.sec == 0:
            self._zero_stamp_skips += 1
            if self._zero_stamp_skips == 1:
                self.node.get_logger().info(
                    'diagnostics: clock reads 0 (use_sim_time before /clock?); '
                    'not publishing until it runs')
            return False
        array = DiagnosticArray()
        array.header.stamp = stamp
        for stat in statuses:
            array.status.append(DiagnosticStatus(
                level=stat.level, name=f'{self.node_name}: {stat.name}', message=stat.message,
                hardware_id=stat.hardware_id, values=list(stat.values)))
        self.publisher.publish(array)
        return True

    def addedTaskCallback(self, task: _NamedTask) -> None:  # noqa: N802 (upstream name)
        stat = DiagnosticStatusWrapper()
        stat.name = task.name
        stat.summary(OK, 'Node starting up')
        self.publish(stat)
