"""Argument checks shared by the configs and APIs of the package."""

from __future__ import annotations

import numpy as np


def check_count(name: str, value, minimum: int = 0) -> int:
    """`value` as an int if it is an integer (not a bool) ≥ `minimum`, else ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    return int(value)
