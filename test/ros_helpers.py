"""Test-side ROS helpers: a /diagnostics listener spinning in its own thread, and a metrics scrape."""
from __future__ import annotations

import threading
import time
import urllib.request
from typing import Any, Callable, Dict, List, Optional

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from prometheus_client.parser import text_string_to_metric_families
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from rclpy.task import Future


class DiagnosticsListener:
    """Keeps the latest status of every name seen on /diagnostics (what rqt_runtime_monitor shows)."""

    def __init__(self, name: str = 'test_diagnostics_listener') -> None:
        self.node = Node(name)
        self._statuses: Dict[str, DiagnosticStatus] = {}
        self.last_stamp_sec = 0          # header.stamp of the latest array (sim time shows here)
        self.arrays = 0                  # DiagnosticArrays received
        self._lock = threading.Lock()
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, 100)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_diag(self, msg: DiagnosticArray) -> None:
        with self._lock:
            self.last_stamp_sec = msg.header.stamp.sec
            self.arrays += 1
            for s in msg.status:
                self._statuses[s.name] = s

    def forget(self, name: str) -> None:
        with self._lock:
            self._statuses.pop(name, None)

    def status(self, name: str) -> Optional[DiagnosticStatus]:
        with self._lock:
            return self._statuses.get(name)

    def level(self, name: str) -> Optional[int]:
        s = self.status(name)
        return s.level[0] if s else None

    def message(self, name: str) -> str:
        s = self.status(name)
        return s.message if s else ''

    def values(self, name: str) -> Dict[str, str]:
        s = self.status(name)
        return {kv.key: kv.value for kv in s.values} if s else {}

    def names(self) -> list:
        with self._lock:
            return sorted(self._statuses)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2)
        self.thread.join(5)
        self.node.destroy_node()


def answer(send: Callable[[], Future], what: str, timeout: float = 60.0,
           attempt: float = 5.0) -> Any:
    """The result of a service call made by `send()` from a node spun in another thread, asked
    again every `attempt` seconds while no answer comes, for up to `timeout` seconds.

    Why ask again: Fast DDS drops a service's answer when the service answers before its reply
    writer has matched the client's reply reader, however long `services_are_ready` waited
    (rmw_fastrtps#842, open for Humble and Jazzy: 'failed to send response (timeout)'); it is
    likelier while several nodes start at once on a loaded machine. CI saw it once on Jazzy: a
    GetParameters call to a node that had just started had no answer in 10 s. The calls made
    here are safe to repeat (a get, or a set to the same value), as `ros2 param` run again is.
    """
    deadline = time.monotonic() + timeout
    requests = 0
    while True:
        future = send()
        requests += 1
        answered = threading.Event()
        future.add_done_callback(lambda _f: answered.set())
        if answered.wait(max(0.0, min(attempt, deadline - time.monotonic()))) or future.done():
            return future.result()
        future.cancel()
        if time.monotonic() >= deadline:
            raise AssertionError(f'no answer to {what} in {timeout:.0f} s '
                                 f'({requests} requests)')


class ParameterClient:
    """Another node's parameters through its services (what `ros2 param set` calls), from a
    client node spun in its own thread."""

    def __init__(self, target: str, name: str = 'test_parameter_client',
                 context: Any = None) -> None:
        """`context`: an rclpy context of its own (another ROS_DOMAIN_ID); default rclpy's."""
        from conftest import wait_for
        self.target = target
        self.node = Node(name, context=context)
        self.client = AsyncParameterClient(self.node, target)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        wait_for(self.client.services_are_ready, 30, f'{target} parameter services')

    def set(self, name: str, value: Any) -> Any:
        """The SetParametersResult of setting one parameter."""
        return set_parameter(self.client, name, value, f'{self.target}: {name} := {value!r}')

    def get(self, name: str) -> Any:
        """The ParameterValue message of one parameter."""
        return self.get_many([name])[0]

    def get_many(self, names: List[str]) -> List[Any]:
        """The ParameterValue messages of `names`, in their order."""
        return answer(lambda: self.client.get_parameters(names),
                      f'{self.target}: get {names}').values

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2)
        self.thread.join(5)
        self.node.destroy_node()


def set_parameter(client: AsyncParameterClient, name: str, value: Any,
                  what: Optional[str] = None) -> Any:
    """The SetParametersResult of setting one parameter through `client`, whose node spins in
    another thread."""
    return answer(lambda: client.set_parameters([Parameter(name, value=value)]),
                  what or f'{name} := {value!r}').results[0]


OPENMETRICS = 'application/openmetrics-text; version=1.0.0; charset=utf-8'


def scrape(port: int, timeout: float = 5.0, openmetrics: bool = False) -> str:
    """A scrape in the Prometheus text format, or in OpenMetrics (with exemplars) as Prometheus
    itself asks for by default."""
    req = urllib.request.Request(f'http://127.0.0.1:{port}/metrics',
                                 headers={'Accept': OPENMETRICS} if openmetrics else {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read().decode()


def samples(text: str) -> Dict[tuple, float]:
    """{(sample name, frozenset(labels.items())): value} of a scrape."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def sample_value(text: str, name: str, **labels: str) -> Optional[float]:
    """The value of the one sample `name` whose labels include `labels`, or None."""
    for (n, labs), v in samples(text).items():
        if n == name and all((k, val) in labs for k, val in labels.items()):
            return v
    return None
