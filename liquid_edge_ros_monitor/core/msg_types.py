"""ROS message types by name ('pkg/msg/Type'), for any node that subscribes to what the graph says.

The topic monitor subscribes to whatever it discovers and the inference node to the types its
parameters name; both need the class, and a one-line reason when it cannot be imported.
"""
from __future__ import annotations

import importlib
from typing import Any


def import_message_type(type_name: str) -> Any:
    """The Python class of 'pkg/msg/Type', or raise ImportError with a one-line reason."""
    parts = type_name.split('/')
    if len(parts) != 3 or parts[1] != 'msg':
        raise ImportError(f"type '{type_name}' is not of the form pkg/msg/Type")
    try:
        module = importlib.import_module(f'{parts[0]}.msg')
        return getattr(module, parts[2])
    except (ImportError, AttributeError) as exc:
        raise ImportError(f"type '{type_name}' cannot be imported ({exc}); "
                          'install its message package where the monitor runs') from None


def starts_with_header(msg_class: Any) -> bool:
    """Whether the type's first field is a std_msgs/Header (so its stamp is at a fixed offset)."""
    fields = msg_class.get_fields_and_field_types()
    return bool(fields) and next(iter(fields.values())) == 'std_msgs/Header'
