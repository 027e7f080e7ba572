"""What an instrumented node says about its model (no ROS imports).

`ModelInfo` becomes the labels of `liquid_edge_model_info` (so `count by (sha256)` or
`count by (version)` across a fleet shows what runs where), the model's span attributes, the
`model` status line, and, where the model knows them, the training statistics that input drift is
scored against and the multiply-accumulates per step that the energy estimate charges.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Sequence

#: Labels of `liquid_edge_model_info`, besides robot and node.
MODEL_INFO_LABELS = ('model', 'sha256', 'cell', 'mode', 'units', 'version', 'framework')


def file_sha256(path: str) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks (once, at load time)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelInfo:
    """A model as the monitor reports it. Only `name` is required.

    - `version`, `sha256`, `framework` ('torch', 'jax', 'onnx', ...): deployment tracking.
    - `cell`, `mode`, `units`: the liquid network's shape (CfC/LTC), when it is one.
    - `input_mean`, `input_std`: training statistics per input; without them drift is not scored.
    - `macs_per_step`: multiply-accumulates per inference, for the energy estimate (0: unknown).
    - `path`: the weights file, shown on the `model` status; `description`: one line for it.
    - `attributes`: more span attributes for every kept trace (numbers or strings).
    """

    name: str
    version: str = ''
    sha256: str = ''
    framework: str = ''
    cell: str = ''
    mode: str = ''
    units: int = 0
    input_mean: Optional[Sequence[float]] = None
    input_std: Optional[Sequence[float]] = None
    macs_per_step: int = 0
    path: str = ''
    description: str = ''
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: str, **fields: Any) -> 'ModelInfo':
        """A model loaded from `path`: its sha256, and its file name (without extension) as the
        name unless given."""
        fields.setdefault('name', os.path.splitext(os.path.basename(path))[0])
        return cls(path=str(path), sha256=file_sha256(str(path)), **fields)

    def labels(self) -> Dict[str, str]:
        """The `liquid_edge_model_info` labels (empty strings where unknown)."""
        return {'model': self.name, 'sha256': self.sha256, 'cell': self.cell, 'mode': self.mode,
                'units': str(self.units) if self.units else '', 'version': self.version,
                'framework': self.framework}

    def span_attributes(self) -> Dict[str, Any]:
        """Attributes every kept trace carries: model.* and, for a liquid network, lnn.*."""
        attrs: Dict[str, Any] = {'model.name': self.name}
        for key, value in (('model.version', self.version), ('model.framework', self.framework),
                           ('lnn.cell', self.cell), ('lnn.mode', self.mode)):
            if value:
                attrs[key] = value
        if self.units:
            attrs['lnn.units'] = self.units
        attrs.update(self.attributes)
        return attrs

    def summary(self) -> str:
        """One short line for the `model` status."""
        if self.description:
            return self.description
        return ' '.join(p for p in (self.name, self.version, self.framework and
                                    f'({self.framework})') if p)
