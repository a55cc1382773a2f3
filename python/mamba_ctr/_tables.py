"""Result tables shared by evaluate, study and compare: atomic CSV/JSON/Markdown writes and R² cells."""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """The rows (dicts with the same keys) as CSV, written under a temporary name and renamed."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)


def write_text(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def write_json(path: Path, value: Any) -> None:
    write_text(path, json.dumps(value, indent=1, default=_json_default, allow_nan=True))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def r2_cells(row: dict[str, Any], groups: Sequence[str]) -> str:
    """The `R2_<group>` entries of a row as Markdown cells ("–" where there is none)."""
    return " | ".join("–" if not math.isfinite(row[f"R2_{g}"]) else f"{row[f'R2_{g}']:.3f}" for g in groups)
