"""Every structure family by one name: a built-in preset ("paper-12L"), a preset TOML (`base = ...` plus
overrides) or a FAMILY.toml around a structure file (`[family]`, `io.family_file`); and back from the
description a dataset or checkpoint stores (`to_dict`).

Both kinds offer what generation, training and evaluation use: `grid`, `model`, `sample(n, seed, start)`,
`labels`, `label_specs`, `parameters`, `nominal`, `to_dict`, `name`.
"""

from __future__ import annotations

import os

from .io.family_file import family_from_dict, is_family_file, read_family
from .physics import presets
from .physics.family import FAMILY_KIND, StructureFamily
from .physics.presets import PerovskitePreset

__all__ = ["Family", "from_dict", "resolve"]

Family = PerovskitePreset | StructureFamily


def resolve(spec: str | os.PathLike | Family) -> Family:
    """A preset by name, a preset TOML or a FAMILY.toml (a family object is returned as it is)."""
    if isinstance(spec, (PerovskitePreset, StructureFamily)):
        return spec
    if str(spec).endswith(".toml") and is_family_file(spec):
        return read_family(spec)
    return presets.resolve(spec)


def from_dict(values: dict) -> Family:
    """The family a stored `to_dict()` describes."""
    if values.get("family") == FAMILY_KIND:
        return family_from_dict(values)
    return presets.from_dict(values)
