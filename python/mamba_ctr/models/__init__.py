"""Pretrained models shipped in the package (needs torch: ``pip install mamba-ctr[train]``).

    >>> from mamba_ctr import models
    >>> models.available()
    ['lsmo', 'paper-12L', 'paper-12L-standardised']
    >>> checkpoint = models.load("paper-12L")        # a mamba_ctr.nn.checkpoint.Checkpoint
    >>> mine = models.load("runs/train")             # or a training directory (its best checkpoint)

Each model is a checkpoint (weights stored as float16 tensors, loaded into float32 networks; JSON metadata with
the architecture, grid, normalisation, preset, training history and the measured validation/test MAE). How each
was trained is in its metadata ("provenance") and in the README. `paper-12L`: the paper's 12-layer film on its
grid, scale-free-global input (any intensity scale, complete rods; results/training/paper12L-global);
`paper-12L-standardised`: the same film with the paper's standardised input (absolute scale; shipped as
`paper-12L` until 2026-12-02); `lsmo`: the LSMO family of results/lsmo-model around the MAMBA authors' structure, on
the grid of their measured rods (scale-free input; `mamba-ctr predict MEASURED --model lsmo`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError

if TYPE_CHECKING:  # torch is optional
    from ..nn.checkpoint import Checkpoint

__all__ = ["available", "load", "path"]

_HERE = Path(__file__).parent


def available() -> list[str]:
    """Names of the shipped models."""
    return sorted(p.name[: -len(".json")] for p in _HERE.glob("*.json"))


def path(name: str) -> Path:
    """The checkpoint stem of a shipped model."""
    names = available()
    if name not in names:
        raise InputError(f"no shipped model {name!r} (available: {', '.join(names) or 'none'})")
    return _HERE / name


def load(spec: str | os.PathLike = "paper-12L", map_location: str = "cpu") -> Checkpoint:
    """A Checkpoint (networks in eval mode, float32) from a shipped model name, a training directory (its best
    checkpoint) or a checkpoint (its stem or one of its files); InputError when there is none."""
    from ..nn.checkpoint import load_checkpoint

    name = str(spec)
    stem = _HERE / name if name in available() else Path(spec)
    if stem.is_dir():
        stem = stem / "best"
    try:
        return load_checkpoint(stem, map_location=map_location)
    except InputError:
        if stem.exists() or stem.with_name(f"{stem.name}.json").exists():
            raise
        raise InputError(f"no shipped model or checkpoint {name!r} (shipped: {', '.join(available()) or 'none'}; "
                         "or give a training directory or a checkpoint)") from None
