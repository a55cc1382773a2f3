"""Built-in structure presets: `mamba_ctr.presets.get("paper-12L")` (see mamba_ctr.physics.presets)."""

from .physics.presets import BLOCK, LabelSpec, PerovskitePreset, from_dict, get, names, register

__all__ = ["BLOCK", "LabelSpec", "PerovskitePreset", "from_dict", "get", "names", "register"]
