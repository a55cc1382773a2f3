"""Checkpoints: plain tensors plus JSON metadata; loading never unpickles code.

A checkpoint STEM is two (three) files:

* ``STEM.safetensors`` (when the safetensors package is installed) or ``STEM.pt`` (``torch.save`` of a flat
  dict of tensors, read back with ``torch.load(weights_only=True)``): the weights of every network, keys
  ``"<name>.<parameter>"``, name "real"/"imag" (the paper's twin networks) or "both" (one network, 2 outputs);
* ``STEM.json``: format, architecture and its arguments, targets, grid (``Grid.to_dict``), normalisation
  (``Normalisation.to_dict``), preset (``to_dict``, or null), package version, training history, and the name
  of the weights file. It is written last (each file under a temporary name, then renamed), so a checkpoint
  whose JSON exists is complete;
* ``STEM.optim.pt`` (optional, for resuming): optimizer states, also tensors and plain containers only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..data.torch_data import Normalisation
from ..physics import Grid
from . import build

__all__ = ["Checkpoint", "export_checkpoint", "load_checkpoint", "save_checkpoint"]

FORMAT = "mamba-ctr-checkpoint"
FORMAT_VERSION = 1

try:  # optional
    import safetensors.torch as _safetensors
except ImportError:  # pragma: no cover - depends on the environment
    _safetensors = None


def _stem(path: str | os.PathLike) -> Path:
    path = Path(path)
    for suffix in (".json", ".safetensors", ".pt"):
        if path.name.endswith(suffix):
            return path.with_name(path.name[: -len(suffix)])
    return path


def _replace_into(path: Path, write) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


@dataclass
class Checkpoint:
    """A loaded checkpoint: the networks by target name ("real", "imag" or "both"), and the metadata."""

    models: dict[str, torch.nn.Module]
    metadata: dict[str, Any]
    normalisation: Normalisation
    grid: Grid
    optimizer_states: dict[str, Any] = field(default_factory=dict)

    @property
    def arch(self) -> str:
        return self.metadata["architecture"]

    @property
    def history(self) -> list[dict]:
        return self.metadata.get("history", [])


def save_checkpoint(path: str | os.PathLike, models: dict[str, torch.nn.Module], *, arch: str,
                    arch_kwargs: dict[str, Any], grid: Grid, normalisation: Normalisation,
                    preset: dict | None = None, history: list[dict] | None = None,
                    optimizers: dict[str, torch.optim.Optimizer] | None = None,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write the checkpoint STEM (= path without .json/.safetensors/.pt); returns STEM.json."""
    stem = _stem(path)
    stem.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"{name}.{key}": value.detach().to("cpu").contiguous()
               for name, model in models.items() for key, value in model.state_dict().items()}
    if _safetensors is not None:
        weights = stem.with_name(stem.name + ".safetensors")
        _replace_into(weights, lambda p: _safetensors.save_file(tensors, str(p)))
    else:
        weights = stem.with_name(stem.name + ".pt")
        _replace_into(weights, lambda p: torch.save(tensors, p))
    if optimizers:
        states = {name: optimizer.state_dict() for name, optimizer in optimizers.items()}
        _replace_into(stem.with_name(stem.name + ".optim.pt"), lambda p: torch.save(states, p))
    metadata = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "architecture": arch,
        "arch_kwargs": _jsonable(arch_kwargs), "targets": list(models), "weights": weights.name,
        "grid": grid.to_dict(), "normalisation": normalisation.to_dict(),
        "preset": None if preset is None else _jsonable(preset), "mamba_ctr_version": __version__,
        "history": _jsonable(history or []), **_jsonable(extra or {}),
    }
    meta_path = stem.with_name(stem.name + ".json")
    _replace_into(meta_path, lambda p: p.write_text(json.dumps(metadata, indent=1)))
    return meta_path


def _grid_of(value: Grid | dict) -> Grid:
    return value if isinstance(value, Grid) else Grid(**value)


def load_checkpoint(path: str | os.PathLike, *, grid: Grid | None = None, preset: Any = None,
                    map_location: str | torch.device = "cpu", optimizer_state: bool = False) -> Checkpoint:
    """Load a checkpoint (path: STEM or any of its files).

    grid / preset (a preset name, a PerovskitePreset or its to_dict): what the caller will use the networks
    for; a checkpoint trained for another grid or preset is refused with a ValueError.
    """
    stem = _stem(path)
    meta_path = stem.with_name(stem.name + ".json")
    if not meta_path.is_file():
        raise FileNotFoundError(f"no checkpoint {meta_path}")
    try:
        metadata = json.loads(meta_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{meta_path} is not valid JSON ({error})") from None
    if metadata.get("format") != FORMAT or metadata.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{meta_path} is not a {FORMAT} version {FORMAT_VERSION} file")
    stored_grid = Grid(**metadata["grid"])
    if grid is not None and not _grid_of(grid).same_as(stored_grid):
        raise ValueError(f"checkpoint {stem} was trained for another grid ({stored_grid!r}), not {_grid_of(grid)!r}")
    if preset is not None:
        stored = metadata.get("preset")
        if isinstance(preset, str):
            asked_name, asked = preset, None
        else:
            asked = _jsonable(preset if isinstance(preset, dict) else preset.to_dict())
            asked_name = asked.get("name")
        if stored is None:
            raise ValueError(f"checkpoint {stem} records no preset; cannot check it is for {asked_name!r}")
        if stored.get("name") != asked_name or (asked is not None and asked != stored):
            raise ValueError(f"checkpoint {stem} was trained for preset {stored.get('name')!r} "
                             f"{'' if stored.get('name') != asked_name else '(other parameters) '}"
                             f"not {asked_name!r}")
    weights = stem.with_name(metadata["weights"])
    if weights.suffix == ".safetensors":
        if _safetensors is None:
            raise ImportError(f"{weights} needs the safetensors package (pip install safetensors)")
        tensors = _safetensors.load_file(str(weights), device=str(map_location))
    else:
        tensors = torch.load(weights, map_location=map_location, weights_only=True)
    models = {}
    for name in metadata["targets"]:
        model = build(metadata["architecture"], **metadata["arch_kwargs"])
        prefix = f"{name}."
        model.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
        models[name] = model.to(map_location)
    states = {}
    optim_path = stem.with_name(stem.name + ".optim.pt")
    if optimizer_state and optim_path.is_file():
        states = torch.load(optim_path, map_location=map_location, weights_only=True)
    return Checkpoint(models, metadata, Normalisation.from_dict(metadata["normalisation"]), stored_grid, states)


def export_checkpoint(source: str | os.PathLike, destination: str | os.PathLike, *, half: bool = True,
                      extra: dict[str, Any] | None = None) -> Path:
    """Copy a checkpoint for distribution: weights as a torch.save'd dict of tensors (float16 when `half`,
    loaded back into float32 networks), no optimizer state, metadata plus `extra` (e.g. measured test MAE,
    the command that trained it). Returns the new STEM.json."""
    checkpoint = load_checkpoint(source)
    stem = _stem(destination)
    tensors = {f"{name}.{key}": (value.half() if half and value.is_floating_point() else value).contiguous()
               for name, model in checkpoint.models.items() for key, value in model.state_dict().items()}
    weights = stem.with_name(stem.name + ".pt")
    stem.parent.mkdir(parents=True, exist_ok=True)
    _replace_into(weights, lambda p: torch.save(tensors, p))
    metadata = {**checkpoint.metadata, **_jsonable(extra or {}), "weights": weights.name,
                "weights_dtype": "float16" if half else "float32"}
    meta_path = stem.with_name(stem.name + ".json")
    _replace_into(meta_path, lambda p: p.write_text(json.dumps(metadata, indent=1)))
    return meta_path
