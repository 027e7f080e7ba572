"""Run-time parameter changes (`ros2 param set`, rqt_reconfigure, a launch-time override through
the parameter service) for the monitors: checked whole, applied at the next period.

A change is validated exactly as the parameters are at start-up: the node's full set of values,
with the change in, goes through the same parse function, so a rejected set returns the same
one-line reason (`parameter 'topic.imu.tolerance': must be in [0, 1), got 1.5`) as the set's
failure and changes nothing. An accepted set leaves a new configuration for the node to take at
its next period, on its own thread (`take`): nothing is reconfigured from inside the parameter
service's callback.

Which parameters may change is the schema's business (`ParamSpec.dynamic`; the others are
declared read-only, and rclpy refuses them before this is asked). Names a node declares as it
goes (a new listed topic's `topic.<key>.*`) are `dynamic_prefixes`. Parameters that are not the
node's own (rclpy's `use_sim_time`, the diagnostic updater's, declared after this callback is in
place: rclpy runs it for declarations too) are left to their owners.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Generic, Iterable, List, Optional, TypeVar

from rcl_interfaces.msg import SetParametersResult

from .params import ConfigError

C = TypeVar('C')


class LiveParameters(Generic[C]):
    """The parameter-change callback of one node: `parse(values) -> config` or `ConfigError`."""

    def __init__(self, node: Any, values: Dict[str, Any], parse: Callable[[Dict[str, Any]], C],
                 dynamic: Iterable[str], dynamic_prefixes: Iterable[str] = ()) -> None:
        self._values = dict(values)
        self._parse = parse
        self._dynamic = frozenset(dynamic)
        self._prefixes = tuple(dynamic_prefixes)
        self._pending: Optional[C] = None
        self.changes: List[str] = []          # names changed by the latest accepted set
        node.add_on_set_parameters_callback(self._on_set)

    @property
    def values(self) -> Dict[str, Any]:
        """The values in force (or about to be, at the next period)."""
        return dict(self._values)

    def _on_set(self, params: List[Any]) -> SetParametersResult:
        values = dict(self._values)
        ours = False
        for p in params:
            mine = p.name in self._values or p.name.startswith(self._prefixes)
            if not mine:
                continue            # rclpy's or the updater's own (use_sim_time, ...): theirs
            if p.name not in self._dynamic and not p.name.startswith(self._prefixes):
                return SetParametersResult(successful=False, reason=(
                    f"parameter '{p.name}': not changeable at run time (set it at start-up)"))
            values[p.name] = p.value
            ours = True
        if not ours:
            return SetParametersResult(successful=True)
        try:
            config = self._parse(values)
        except ConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self._values = values
        self._pending = config
        self.changes = sorted(p.name for p in params)
        return SetParametersResult(successful=True)

    def take(self) -> Optional[C]:
        """The configuration an accepted set made, once (None when there is none)."""
        config, self._pending = self._pending, None
        return config
