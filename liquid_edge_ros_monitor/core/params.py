"""Parameter schemas and their validation, shared by every node (no ROS imports).

A node's schema (a tuple of `ParamSpec`) drives both its ROS parameter declarations (names, types,
descriptions, defaults; see `ros_params`) and the validation, so a parameter cannot be declared and
forgotten. Every error is one line that names the parameter, e.g.
``parameter 'topic.imu.tolerance': must be in [0, 1), got 1.5``.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

class ConfigError(ValueError):
    """A parameter value is invalid; the message is one line naming the parameter."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"parameter '{name}': {problem}")
        self.parameter = name


Check = Callable[[Any], Optional[str]]


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: its name, type ('double', 'integer', 'bool', 'string', 'string_array'),
    default, description, an optional check returning a problem or None, and whether it may be
    changed at run time (`dynamic`: the node applies a `ros2 param set`; else it is read-only)."""

    name: str
    type: str
    default: Any
    description: str
    check: Optional[Check] = None
    dynamic: bool = False


def positive(v: float) -> Optional[str]:
    return None if v > 0 else f'must be > 0, got {v}'


def non_negative(v: float) -> Optional[str]:
    return None if v >= 0 else f'must be >= 0 (0 disables it), got {v}'


def fraction(v: float) -> Optional[str]:
    return None if 0 <= v < 1 else f'must be in [0, 1), got {v}'


def int_range(lo: int, hi: int, what: str = '') -> Check:
    def check(v: int) -> Optional[str]:
        return None if lo <= v <= hi else f'must be in [{lo}, {hi}]{what}, got {v}'
    return check


def address(v: str) -> Optional[str]:
    try:
        ipaddress.ip_address(v)
    except ValueError:
        return f"must be an IP address such as 127.0.0.1 or 0.0.0.0, got '{v}'"
    return None


def patterns(v: Sequence[str]) -> Optional[str]:
    for p in v:
        try:
            re.compile(p)
        except re.error as exc:
            return f"invalid regular expression '{p}': {exc}"
    return None


# A ROS topic name, relative or absolute (design.ros2.org/articles/topic_and_service_names.html).
_TOPIC = re.compile(r'(~/?|/)?[A-Za-z_{][A-Za-z0-9_{}]*(/[A-Za-z_{][A-Za-z0-9_{}]*)*\Z|/\Z')


def topic_name(v: str) -> Optional[str]:
    if not v:
        return 'must name a topic, got an empty string'
    if v == '/' or not _TOPIC.match(v):
        return f"'{v}' is not a valid ROS topic name"
    return None


#: Parameters that rclpy or the diagnostic updater own; never reported as unknown.
FOREIGN_PREFIXES = ('use_sim_time', 'diagnostic_updater.', 'qos_overrides.',
                    'start_type_description_service')


def endpoint_params(default_port: int) -> Tuple[ParamSpec, ...]:
    """`metrics_port`, `metrics_address` and `robot`: the same three on every node of the package."""
    return (
        ParamSpec('metrics_port', 'integer', default_port,
                  'Prometheus endpoint port; 0 picks a free port, -1 disables the endpoint.',
                  int_range(-1, 65535)),
        ParamSpec('metrics_address', 'string', '127.0.0.1',
                  'Address the Prometheus endpoint binds to (0.0.0.0 to expose it).', address),
        ParamSpec('robot', 'string', '',
                  'Value of the `robot` metric label and the diagnostics hardware_id; '
                  'empty = host name.'),
    )


def unknown_names(given: Iterable[str], known: Iterable[str]) -> List[str]:
    """Names in `given` that are neither `known` nor owned by rclpy / the updater, sorted."""
    known = set(known)
    return sorted(n for n in given if n not in known and not n.startswith(FOREIGN_PREFIXES))


def coerce(spec: ParamSpec, value: Any) -> Any:
    """Check a value's type against its spec; ints are accepted for doubles (YAML writes 200)."""
    t = spec.type
    if t == 'double':
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(spec.name, f'must be a number, got {value!r}')
        value = float(value)
        if value != value or value in (float('inf'), float('-inf')):
            raise ConfigError(spec.name, f'must be finite, got {value}')
        return value
    if t == 'integer':
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(spec.name, f'must be an integer, got {value!r}')
        return value
    if t == 'bool':
        if not isinstance(value, bool):
            raise ConfigError(spec.name, f'must be true or false, got {value!r}')
        return value
    if t == 'string':
        if not isinstance(value, str):
            raise ConfigError(spec.name, f'must be a string, got {value!r}')
        return value
    if t == 'string_array':
        if isinstance(value, str) or not isinstance(value, (list, tuple)) or \
                not all(isinstance(v, str) for v in value):
            raise ConfigError(spec.name, f'must be a list of strings, got {value!r}')
        return list(value)
    raise AssertionError(f'unknown parameter type {t}')


def read_params(specs: Iterable[ParamSpec], values: Mapping[str, Any]) -> Dict[str, Any]:
    """Coerce and check each spec's value (its default when absent); raise `ConfigError`."""
    out = {}
    for spec in specs:
        v = coerce(spec, values.get(spec.name, spec.default))
        problem = spec.check(v) if spec.check else None
        if problem:
            raise ConfigError(spec.name, problem)
        out[spec.name] = v
    return out
