"""One structure of a preset's layout from a TOML or JSON file.

    preset = "paper-12L"          # the layer layout the arrays follow (default paper-12L)
    [layers]                      # one value per layer (13 for paper-12L); any key may be left out
    c = [3.905, 3.91, ...]        # Å; missing keys take the preset's nominal structure
    z_B = [...]                   # fractional heights within the layer
    z_Oap = [...]
    z_Ox = [...]
    z_Oy = [...]
    sr_fraction = [...]           # Sr share of the A site
    occupancy = [...]
    beta = 0.0                    # optional β roughness (top level)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..physics import presets
from ..physics.model import Structures
from ..physics.presets import PerovskitePreset

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

LAYER_KEYS = ("c", "z_B", "z_Oap", "z_Ox", "z_Oy", "sr_fraction", "occupancy")


def load_structure(path: str | Path) -> tuple[PerovskitePreset, Structures]:
    """(preset, one structure) described by a TOML or JSON file (see module docstring)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"structure must be a .toml or .json file, got the directory {path}")
    if not path.is_file():
        raise InputError(f"structure file not found: {path}")
    try:
        text = path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read {path} ({error})") from None
    try:
        if path.suffix.lower() == ".json":
            spec = json.loads(text)
        elif path.suffix.lower() == ".toml":
            spec = tomllib.loads(text.decode())
        else:
            raise InputError(f"structure file must end in .toml or .json, got {path.name}")
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"cannot parse {path}: {error}") from None
    return structure_from_dict(spec, source=str(path))


def structure_from_dict(spec: dict, source: str = "structure") -> tuple[PerovskitePreset, Structures]:
    if not isinstance(spec, dict):
        raise InputError(f"{source}: expected a table with 'preset' and [layers], got {type(spec).__name__}")
    unknown = set(spec) - {"preset", "layers", "beta"}
    if unknown:
        raise InputError(f"{source}: unknown keys {sorted(unknown)}; expected preset, layers, beta")
    name = spec.get("preset", "paper-12L")
    if not isinstance(name, str):
        raise InputError(f"{source}: preset must be a preset name such as \"paper-12L\", got {name!r:.80}")
    try:
        preset = presets.get(name)
    except ValueError as error:  # an unknown preset name
        raise InputError(f"{source}: {error}") from None
    layers = spec.get("layers", {})
    if not isinstance(layers, dict):
        raise InputError(f"{source}: layers must be a table of per-layer lists ([layers]), got {layers!r:.80}")
    unknown = set(layers) - set(LAYER_KEYS)
    if unknown:
        raise InputError(f"{source}: unknown [layers] keys {sorted(unknown)}; expected {', '.join(LAYER_KEYS)}")
    values = preset.parameters(preset.nominal())
    for key, given in layers.items():
        try:
            array = np.asarray(given, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"{source}: layers.{key} must be a list of numbers") from None
        if array.shape != (preset.n_layers,):
            raise InputError(f"{source}: layers.{key} must have {preset.n_layers} values (one per layer of "
                             f"{preset.name}), got {array.size}")
        if not np.all(np.isfinite(array)):
            raise InputError(f"{source}: layers.{key} must be finite numbers, got {array.tolist()}")
        values[key] = array[None]
    beta = spec.get("beta", 0.0)
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not np.isfinite(beta):
        raise InputError(f"{source}: beta must be a finite number (β roughness), got {beta!r:.80}")
    # LAYER_KEYS are the seven per-layer arguments that precede beta
    try:  # the model checks the values (e.g. occupancy in [0, 1])
        structures = preset.from_parameters(*(values[key] for key in LAYER_KEYS), beta=float(beta))  # type: ignore[misc]
    except ValueError as error:
        raise InputError(f"{source}: {error}") from None
    return preset, structures
