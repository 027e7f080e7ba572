"""Declaring a node's parameters from a `ParamSpec` schema (the thin ROS side of `params`).

Every node of this package declares its parameters with the spec's description, read-only unless
the spec is `dynamic` (then the node validates and applies a change at run time), and reads the
names the user supplied (params file, ``-p``) so that misspelled ones can stop the node.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List

from rcl_interfaces.msg import ParameterDescriptor

from .params import ConfigError, ParamSpec


def declare(node: Any, spec: ParamSpec) -> Any:
    """Declare one parameter and return its value (the spec's default when unset).

    Declared with dynamic typing so that a wrong type reaches our one-line check instead of
    rclpy's multi-line exception; an empty list default is declared as None (rclpy cannot infer
    the type of ``[]``). rclpy also hands a user's ``[]`` over as unset: an override of a list
    parameter that arrives unset is the empty list the user wrote, not the default.
    """
    desc = ParameterDescriptor(description=spec.description, read_only=not spec.dynamic,
                               dynamic_typing=True)
    default = None if spec.default == [] else spec.default
    try:
        value = node.declare_parameter(spec.name, default, desc).value
    except Exception as exc:  # rclpy's own type errors: keep them one line
        raise ConfigError(spec.name, str(exc).splitlines()[0]) from None
    if value is None:
        given = getattr(node, '_parameter_overrides', {})
        return [] if spec.type == 'string_array' and spec.name in given else spec.default
    return value


def declare_all(node: Any, specs: Iterable[ParamSpec]) -> Dict[str, Any]:
    """Declare every spec; name -> value."""
    return {s.name: declare(node, s) for s in specs}


def user_overrides(node: Any) -> List[str]:
    """The parameter names the user gave this node (rclpy keeps them as overrides)."""
    return list(getattr(node, '_parameter_overrides', {}).keys())
