"""Choice of the simulation backend: compiled (C++/OpenMP), numba, or the numpy reference.

`backend="auto"` (the default) reads MAMBA_CTR_BACKEND (auto|compiled|numba|numpy);
unset or "auto" picks the compiled kernel, then numba, then numpy. Asking for
"compiled" when the extension is missing is an error, never a silent fallback.
"""

from __future__ import annotations

import importlib
import os
from functools import cache
from typing import Any

from ._kernel_args import PlanTables

BACKENDS = ("compiled", "numba", "numpy")
_MODULES = {"compiled": "mamba_ctr._core", "numba": "mamba_ctr._kernels_numba"}  # numpy needs no module
ENV_VAR = "MAMBA_CTR_BACKEND"


@cache
def _import(module: str):
    """Import a kernel module once; return (module, None) or (None, error text)."""
    try:
        return importlib.import_module(module), None
    except ImportError as error:  # missing extension or numba
        return None, f"{type(error).__name__}: {error}"


def compiled_module():
    module, _ = _import(_MODULES["compiled"])
    return module


def available() -> dict[str, str | None]:
    """Backend name → None if usable, else why not."""
    return {name: _unavailable(name) for name in BACKENDS}


def _unavailable(name: str) -> str | None:
    """None if the backend is usable, else why not (imports only that backend's module)."""
    module = _MODULES.get(name)
    return None if module is None else _import(module)[1]


def resolve(backend: str | None = "auto") -> str:
    """The concrete backend for a request ("auto", None, or a backend name)."""
    requested = (backend or "auto").strip().lower()
    if requested == "auto":
        requested = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
        source = f"{ENV_VAR}={requested}"
    else:
        source = f"backend={requested!r}"
    if requested not in (*BACKENDS, "auto"):
        raise ValueError(f"unknown backend in {source}: expected one of auto, {', '.join(BACKENDS)}")
    if requested == "auto":  # the first usable one; later ones are not imported (numba's import takes ~1 s)
        return next(name for name in BACKENDS if _unavailable(name) is None)
    reason = _unavailable(requested)
    if reason is not None:
        hint = (" (build the package with a C++17 compiler: pip install . ; or choose backend='numba')"
                if requested == "compiled" else "")
        raise RuntimeError(f"backend {requested!r} was asked for ({source}) but is unavailable: "
                           f"{reason}{hint}")
    return requested


def plan(name: str, tables: PlanTables) -> Any:
    """The kernel plan of a backend ("compiled": `_core.Plan`, or "numba") for checked-once `tables`."""
    module_name = _MODULES[name]
    module, error = _import(module_name)
    if module is None:
        raise RuntimeError(f"backend {name!r} is unavailable: {error}")
    return module.Plan(*tables)


def max_threads(name: str) -> int:
    """Threads the backend uses by default (1 for numpy)."""
    if name == "numpy":
        return 1
    module_name = _MODULES[name]
    return int(_import(module_name)[0].max_threads())
