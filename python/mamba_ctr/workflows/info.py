"""Show the version, the backend `auto` picks, each backend's availability and its thread count."""

from __future__ import annotations

import json as _json
import os
import platform
from dataclasses import dataclass, field

import numpy as np

from .. import _backend
from .._version import __version__
from ._common import Result

__all__ = ["Config", "run"]


@dataclass
class Config:
    json: bool = field(default=False, metadata={"help": "print JSON"})


def run(config: Config) -> Result:
    """The facts as a dict (`Result.value`), printed as a table or as JSON."""
    info: dict = {"mamba-ctr": __version__, "python": platform.python_version(), "numpy": np.__version__,
                  "platform": platform.platform()}
    available = _backend.available()
    try:
        info["backend"] = _backend.resolve("auto")
    except (RuntimeError, ValueError) as error:  # reported, not raised: info is how users diagnose this
        info["backend"] = f"error: {error}"
    info["MAMBA_CTR_BACKEND"] = os.environ.get(_backend.ENV_VAR, "(unset)")
    for name, reason in available.items():
        info[f"{name} backend"] = "available" if reason is None else f"unavailable ({reason})"
    core = _backend.compiled_module()
    if core is not None:
        info["OpenMP"] = "yes" if core.have_openmp() else "no (single thread)"
        info["OpenMP threads"] = core.max_threads()
        try:
            info["kernel ISA"] = f"{core.isa()} (compiled variants this CPU runs: {', '.join(core.isa_variants())})"
        except ValueError as error:  # MAMBA_CTR_ISA names a variant this CPU or build lacks
            info["kernel ISA"] = f"error: {error}"
    if available["numba"] is None:
        info["numba threads"] = _backend.max_threads("numba")
    if config.json:
        return Result(info, _json.dumps(info, indent=2))
    width = max(map(len, info))
    return Result(info, "\n".join(f"{key:<{width}}  {value}" for key, value in info.items()))
