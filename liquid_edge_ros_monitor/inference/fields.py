"""Read and write numeric message fields by dotted path (``angular_velocity.z``), checked up front.

The paths come from parameters, so they are checked against the message class once, at start-up,
with a one-line error naming the path; the returned getters/setters are plain `operator.attrgetter`
calls on the hot path.
"""
from __future__ import annotations

import operator
from typing import Any, Callable, List, Sequence

NUMERIC = {'float', 'double', 'int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32', 'int64',
           'uint64', 'octet', 'char'}


def _field_type(msg_class: Any, path: str) -> str:
    """The rosidl type of `path` in `msg_class`, or raise ValueError naming the missing part."""
    cls = msg_class
    parts = path.split('.')
    for i, part in enumerate(parts):
        fields = cls.get_fields_and_field_types()
        if part not in fields:
            where = '.'.join(parts[:i]) or cls.__name__
            raise ValueError(f"'{path}': {where} has no field '{part}' "
                             f"(fields: {', '.join(fields)})")
        ftype = fields[part]
        if i == len(parts) - 1:
            return ftype
        if '/' not in ftype or '[' in ftype or '<' in ftype:
            raise ValueError(f"'{path}': '{'.'.join(parts[:i + 1])}' is {ftype}, not a message")
        pkg, name = ftype.split('/')
        module = __import__(f'{pkg}.msg', fromlist=[name])
        cls = getattr(module, name)
    raise AssertionError('unreachable')


def numeric_getters(msg_class: Any, paths: Sequence[str]) -> Callable[[Any], tuple]:
    """One function returning the values at `paths` as a tuple; raises ValueError on a bad path."""
    for p in paths:
        t = _field_type(msg_class, p)
        if t not in NUMERIC:
            raise ValueError(f"'{p}' is {t}, not a number")
    getter = operator.attrgetter(*paths)
    if len(paths) == 1:
        return lambda msg: (getter(msg),)
    return getter


def numeric_setters(msg_class: Any, paths: Sequence[str]) -> List[Callable[[Any, float], None]]:
    """One setter per path (msg, value); raises ValueError on a bad or non-float path."""
    out: List[Callable[[Any, float], None]] = []
    for p in paths:
        t = _field_type(msg_class, p)
        if t not in ('float', 'double'):
            raise ValueError(f"'{p}' is {t}; commands are written to float or double fields")
        parent, _, leaf = p.rpartition('.')
        get_parent = operator.attrgetter(parent) if parent else (lambda m: m)

        def setter(msg: Any, value: float, _gp: Callable[[Any], Any] = get_parent,
                   _leaf: str = leaf) -> None:
            setattr(_gp(msg), _leaf, value)
        out.append(setter)
    return out


def has_header(msg_class: Any) -> bool:
    fields = msg_class.get_fields_and_field_types()
    return fields.get('header') == 'std_msgs/Header'
