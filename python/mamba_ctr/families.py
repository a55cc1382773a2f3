"""Every structure family by one name: a built-in preset ("paper-12L"), a preset TOML (`base = ...` plus
overrides) or a FAMILY.toml around a structure file (`[family]`, `io.family_file`); and back from the
description a dataset or checkpoint stores (`to_dict`).

Both kinds offer what generation, training and evaluation use: `grid`, `model`, `sample(n, seed, start)`,
`labels`, `label_specs`, `parameters`, `nominal`, `to_dict`, `name`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .physics import presets
from .physics.presets import PerovskitePreset

if TYPE_CHECKING:  # the family module (the PARAMS reader, films from atoms) is imported only when one is used
    from .physics.family import StructureFamily

    Family = PerovskitePreset | StructureFamily

__all__ = ["Family", "from_dict", "resolve"]

FAMILY_KIND = "structure-file"  # physics.family.FAMILY_KIND (tested equal)


def resolve(spec: str | os.PathLike | Any) -> Family:
    """A preset by name, a preset TOML or a FAMILY.toml (a family object is returned as it is)."""
    if not isinstance(spec, (str, os.PathLike)):
        return spec
    if str(spec).endswith(".toml"):
        from .io.family_file import is_family_file, read_family  # readers of every file format: only for files

        if is_family_file(spec):
            return read_family(spec)
    return presets.resolve(spec)


def from_dict(values: dict) -> Family:
    """The family a stored `to_dict()` describes."""
    if values.get("family") == FAMILY_KIND:
        from .io.family_file import family_from_dict

        return family_from_dict(values)
    return presets.from_dict(values)
