"""Checkpoints: plain tensors plus JSON metadata; loading never unpickles code.

A checkpoint STEM is two (three) files, each written atomically (`mamba_ctr._files`):

* ``STEM.safetensors`` (when the safetensors package is installed) or ``STEM.pt`` (``torch.save`` of a flat
  dict of tensors, read back with ``torch.load(weights_only=True)``): the network's state dict (for the paper's
  twins the keys are "real.<parameter>" and "imag.<parameter>");
* ``STEM.json``: format, architecture and its arguments, targets, grid (``Grid.to_dict``), normalisation
  (``Normalisation.to_dict``), preset (``to_dict``, or null), package version, training history, and the name
  of the weights file. It is written last, so a checkpoint whose JSON exists is complete;
* ``STEM.optim.pt`` (optional, for resuming): the optimizer's state, also tensors and plain containers only.

Format 1 (before the twins were one module) stored one state dict per network, keys prefixed by "real."/"imag."
(the twins) or "both." (rods), and one optimizer state per network; `load_checkpoint` maps it to format 2.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .._files import atomic_path, write_json
from .._version import __version__
from ..data.torch_data import Normalisation
from ..errors import InputError
from ..physics import Grid
from . import Network, build

__all__ = ["Checkpoint", "export_checkpoint", "load_checkpoint", "save_checkpoint"]

FORMAT = "mamba-ctr-checkpoint"
FORMAT_VERSION = 2

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


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


@dataclass
class Checkpoint:
    """A loaded checkpoint: the network (float32, eval mode; X (B, R, NL) → (B, T, R, NL)) and the metadata."""

    model: Network
    metadata: dict[str, Any]
    normalisation: Normalisation
    grid: Grid
    optimizer_state: dict[str, Any] | None = None

    @property
    def arch(self) -> str:
        return self.metadata["architecture"]

    @property
    def history(self) -> list[dict]:
        return self.metadata.get("history", [])


def _write(stem: Path, suffix: str, write) -> Path:
    path = stem.with_name(stem.name + suffix)
    with atomic_path(path) as temporary:
        write(temporary)
    return path


def _write_weights(stem: Path, tensors: dict[str, torch.Tensor], safetensors: bool = True) -> Path:
    if safetensors and _safetensors is not None:
        return _write(stem, ".safetensors", lambda p: _safetensors.save_file(tensors, str(p)))
    return _write(stem, ".pt", lambda p: torch.save(tensors, p))


def save_checkpoint(path: str | os.PathLike, model: Network, *, arch: str, arch_kwargs: dict[str, Any],
                    grid: Grid, normalisation: Normalisation, preset: dict | None = None,
                    history: list[dict] | None = None, optimizer: torch.optim.Optimizer | None = None,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write the checkpoint STEM (= path without .json/.safetensors/.pt) of `model` = build(arch, **arch_kwargs)
    (and of `optimizer`'s state, for resuming); returns STEM.json."""
    stem = _stem(path)
    stem.parent.mkdir(parents=True, exist_ok=True)
    weights = _write_weights(stem, {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()})
    if optimizer is not None:
        _write(stem, ".optim.pt", lambda p: torch.save(optimizer.state_dict(), p))
    metadata = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "architecture": arch,
        "arch_kwargs": _jsonable(arch_kwargs), "targets": list(model.targets), "weights": weights.name,
        "grid": grid.to_dict(), "normalisation": normalisation.to_dict(),
        "preset": None if preset is None else _jsonable(preset), "mamba_ctr_version": __version__,
        "history": _jsonable(history or []), **_jsonable(extra or {}),
    }
    meta_path = stem.with_name(stem.name + ".json")
    write_json(meta_path, metadata)
    return meta_path


def _grid_of(value: Grid | dict) -> Grid:
    return value if isinstance(value, Grid) else Grid(**value)


def _check_preset(stem: Path, stored: dict | None, preset: Any) -> None:
    if isinstance(preset, str):
        asked_name, asked = preset, None
    else:
        asked = _jsonable(preset if isinstance(preset, dict) else preset.to_dict())
        asked_name = asked.get("name")
    if stored is None:
        raise InputError(f"checkpoint {stem} records no preset; cannot check it is for {asked_name!r}")
    if stored.get("name") != asked_name or (asked is not None and asked != stored):
        raise InputError(f"checkpoint {stem} was trained for preset {stored.get('name')!r} "
                         f"{'' if stored.get('name') != asked_name else '(other parameters) '}not {asked_name!r}")


def _from_format_1(metadata: dict, tensors: dict[str, torch.Tensor],
                  optimizer_states: dict[str, dict] | None) -> tuple[dict, dict[str, torch.Tensor], dict | None]:
    """A format-1 checkpoint (one state dict and one optimizer per network) as format 2 (one module, one
    optimizer): "both.<key>" (rods) → "<key>"; the twins' "real.<key>"/"imag.<key>" are the keys of
    `PaperTwinUNet` already; a paper checkpoint of one target records it in arch_kwargs["targets"]."""
    names, kwargs = metadata["targets"], dict(metadata["arch_kwargs"])
    if names == ["both"]:
        tensors = {key.removeprefix("both."): value for key, value in tensors.items()}
    elif names != ["real", "imag"]:
        kwargs["targets"] = names
    merged: dict[str, Any] | None = None
    if optimizer_states:  # one param group per network; the module holds their parameters in this order
        groups = [optimizer_states[name]["param_groups"][0] for name in names]
        merged = {"state": {}, "param_groups": [dict(groups[0], params=[])]}
        for name, group in zip(names, groups, strict=True):
            offset = len(merged["param_groups"][0]["params"])
            merged["state"].update({offset + i: s for i, s in optimizer_states[name]["state"].items()})
            merged["param_groups"][0]["params"] += [offset + i for i in group["params"]]
    targets = ["real", "imag"] if names == ["both"] else names
    return {**metadata, "format_version": 2, "arch_kwargs": kwargs, "targets": targets}, tensors, merged


def load_checkpoint(path: str | os.PathLike, *, grid: Grid | None = None, preset: Any = None,
                    map_location: str | torch.device = "cpu", optimizer_state: bool = False) -> Checkpoint:
    """Load a checkpoint (path: STEM or any of its files; format 1 or 2).

    grid / preset (a preset name, a PerovskitePreset or its to_dict): what the caller will use the network
    for; a checkpoint trained for another grid or preset is refused with an InputError. The network comes in
    float32 (also from float16 weights) and in eval mode.
    """
    stem = _stem(path)
    meta_path = stem.with_name(stem.name + ".json")
    if not meta_path.is_file():
        raise InputError(f"no checkpoint {meta_path}")
    try:
        metadata = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{meta_path} is not valid JSON ({error})") from None
    except OSError as error:
        raise InputError(f"cannot read {meta_path} ({error})") from None
    version = metadata.get("format_version") if isinstance(metadata, dict) else None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT or version not in (1, FORMAT_VERSION):
        raise InputError(f"{meta_path} is not a {FORMAT} file of version 1 or {FORMAT_VERSION}")
    try:
        stored_grid = Grid(**metadata["grid"])
    except InputError:
        raise
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"{meta_path}: its grid is missing or malformed ({error})") from None
    if grid is not None and not _grid_of(grid).same_as(stored_grid):
        raise InputError(f"checkpoint {stem} was trained for another grid ({stored_grid!r}), not {_grid_of(grid)!r}")
    if preset is not None:
        _check_preset(stem, metadata.get("preset"), preset)
    if not isinstance(metadata.get("weights"), str):
        raise InputError(f"{meta_path} names no weights file")
    weights = stem.with_name(metadata["weights"])
    if weights.suffix == ".safetensors":
        if _safetensors is None:
            raise ImportError(f"{weights} needs the safetensors package (pip install safetensors)")
        tensors = _load_tensors(weights, lambda: _safetensors.load_file(str(weights), device=str(map_location)))
    else:
        tensors = _load_tensors(weights, lambda: torch.load(weights, map_location=map_location, weights_only=True))
    optim_path = stem.with_name(stem.name + ".optim.pt")
    states = None
    if optimizer_state and optim_path.is_file():
        states = _load_tensors(optim_path, lambda: torch.load(optim_path, map_location=map_location,
                                                              weights_only=True))
    try:
        if version == 1:
            metadata, tensors, states = _from_format_1(metadata, tensors, states)
        model = build(metadata["architecture"], **metadata["arch_kwargs"])
        model.load_state_dict(tensors)
        normalisation = Normalisation.from_dict(metadata["normalisation"])
    except InputError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as error:  # RuntimeError: shapes
        message = " ".join(str(error).split())[:300]
        raise InputError(f"checkpoint {stem} does not match its network ({type(error).__name__}: {message})") from None
    model = model.to(map_location).float().eval()
    return Checkpoint(model, metadata, normalisation, stored_grid, states)


def _load_tensors(path: Path, load: Any) -> Any:
    """`load()` of a weights file; a truncated, corrupt or foreign file, or a pickle that would run code (refused
    by torch's weights_only unpickler before anything runs), is an InputError naming `path`."""
    import pickle
    import zipfile

    try:
        return load()
    except pickle.UnpicklingError as error:  # weights_only: a global outside tensors/containers was refused
        first = str(error).strip().splitlines()[0] if str(error).strip() else "refused"
        raise InputError(f"{path} is refused: not a plain dict of tensors (its pickle would load other objects or "
                         f"run code; {first[:200]})") from None
    except FileNotFoundError:
        raise InputError(f"checkpoint weights {path} are missing") from None
    except (OSError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile, KeyError, IndexError,
            UnicodeDecodeError) as error:
        message = " ".join(str(error).split())[:200]
        raise InputError(f"{path} is not a readable weights file (truncated or corrupt? {type(error).__name__}: "
                         f"{message})") from None


def export_checkpoint(source: str | os.PathLike, destination: str | os.PathLike, *, half: bool = True,
                      extra: dict[str, Any] | None = None) -> Path:
    """Copy a checkpoint for distribution: weights as a torch.save'd dict of tensors (float16 when `half`,
    loaded back into float32 networks), no optimizer state, metadata plus `extra` (e.g. measured test MAE,
    the command that trained it). Returns the new STEM.json."""
    checkpoint = load_checkpoint(source)
    stem = _stem(destination)
    stem.parent.mkdir(parents=True, exist_ok=True)
    tensors = {key: (value.half() if half and value.is_floating_point() else value).contiguous()
               for key, value in checkpoint.model.state_dict().items()}
    weights = _write_weights(stem, tensors, safetensors=False)
    metadata = {**checkpoint.metadata, **_jsonable(extra or {}), "weights": weights.name,
                "weights_dtype": "float16" if half else "float32"}
    meta_path = stem.with_name(stem.name + ".json")
    write_json(meta_path, metadata)
    return meta_path
