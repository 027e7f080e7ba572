"""liquid_inference's messages (no node): the input's features and stamp, the command written into
one preallocated message, the ground truth's values.

The types and field paths come from parameters, so everything is checked once, here, with one
line naming the parameter; per input there is one `attrgetter` call and a slot write into the
feature vector, per command one setter call per output.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..core.msg_types import import_message_type
from ..core.params import ConfigError
from .fields import has_header, numeric_getters, numeric_setters


def _import(type_name: str, param: str) -> Any:
    try:
        return import_message_type(type_name)
    except ImportError as exc:
        raise ConfigError(param, str(exc)) from None


def _getters(cls: Any, paths: Sequence[str], param: str) -> Callable[[Any], tuple]:
    try:
        return numeric_getters(cls, paths)
    except ValueError as exc:
        raise ConfigError(param, str(exc)) from None


class MessageIO:
    """Input, command and truth message types with their checked field accessors."""

    def __init__(self, config: Any) -> None:
        c = config
        self.in_class = _import(c.input_type, 'input_type')
        self.out_class = _import(c.output_type, 'output_type')
        self._features = _getters(self.in_class, c.features, 'features')
        try:
            self._setters = numeric_setters(self.out_class, c.outputs)
        except ValueError as exc:
            raise ConfigError('outputs', str(exc)) from None
        self.in_header = has_header(self.in_class)
        #: The one command message, refilled for every command.
        self.out_msg = self.out_class()
        self.out_header = has_header(self.out_class)
        self._frame_id = c.output_frame_id
        if self.out_header and c.output_frame_id:
            self.out_msg.header.frame_id = c.output_frame_id
        self.truth_class: Optional[Any] = None
        self._truth: Optional[Callable[[Any], tuple]] = None
        if c.truth_topic:
            self.truth_class = _import(c.truth_type, 'ground_truth.type')
            self._truth = _getters(self.truth_class, c.truth_fields, 'ground_truth.fields')

    def features(self, msg: Any, x: np.ndarray) -> None:
        """The input's features into `x`; NaN where a field is not a number (bad input)."""
        try:
            x[:] = self._features(msg)
        except (TypeError, ValueError):
            x[:] = np.nan

    def stamp_ns(self, msg: Any) -> Optional[int]:
        """The input's header.stamp in ns, None for a type without a header."""
        if not self.in_header:
            return None
        st = msg.header.stamp
        return st.sec * 1_000_000_000 + st.nanosec

    def command(self, y: np.ndarray, msg: Any, now: Callable[[], Any]) -> Any:
        """The command message for outputs `y`. A stamped command carries input `msg`'s stamp
        (`now()` for a headerless input, or for a stale command, which has no input) and,
        unless `output_frame_id` is set, its frame."""
        out = self.out_msg
        for setter, v in zip(self._setters, y.tolist()):
            setter(out, v)
        if self.out_header:
            if msg is not None and self.in_header:
                out.header.stamp = msg.header.stamp
                if not self._frame_id:
                    out.header.frame_id = msg.header.frame_id
            else:
                out.header.stamp = now()
        return out

    def truth(self, msg: Any) -> tuple:
        """The ground truth's values (TypeError or ValueError for a field that is no number)."""
        assert self._truth is not None, 'no ground_truth.topic'
        return self._truth(msg)
