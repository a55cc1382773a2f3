"""Pretrained models shipped in the package (needs torch: ``pip install mamba-ctr[train]``).

    >>> from mamba_ctr import models
    >>> models.available()
    ['paper-12L']
    >>> checkpoint = models.load("paper-12L")        # a mamba_ctr.nn.checkpoint.Checkpoint

Each model is a checkpoint (weights stored as float16 tensors, loaded into float32 networks; JSON metadata with
the architecture, grid, normalisation, preset, training history and the measured validation/test MAE). How each
was trained is in its metadata ("provenance") and in the README.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

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
        raise ValueError(f"no shipped model {name!r} (available: {', '.join(names) or 'none'})")
    return _HERE / name


def load(name: str = "paper-12L", map_location: str = "cpu") -> Checkpoint:
    """The shipped model `name` as a Checkpoint (networks in eval mode, float32)."""
    from ..nn.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(path(name), map_location=map_location)
    for model in checkpoint.models.values():
        model.float().eval()
    return checkpoint
