"""`simulate`: rods of a batch of structures on a grid, with the backend of your choice."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _backend
from ._kernel_args import MOMENT_GROUP
from .physics.grid import Grid
from .physics.lowering import GridTables, batch_arrays, grid_tables
from .physics.model import StructureModel, Structures
from .physics.reference import simulate_reference

_KERNEL_BLOCK = 8192     # structures per kernel call: bounds the per-batch inputs (z, weight, rough)
_TABLE_CACHE_SIZE = 64   # (model, grid) pairs kept (least recently used dropped): measured data use one grid per rod
_REFERENCE_BLOCK = 256   # structures per numpy-reference block: (256, R, NL) complex temporaries


@dataclass(eq=False)
class Rods:
    """Simulated rods of n structures.

    Attributes:
        grid: where the rods are sampled.
        intensity: (n, R, NL) float32/float64 I = |S + U|² (electrons², arbitrary scale).
        film_field: (n, R, NL) complex64/complex128 film field U, or None if not asked for.
        substrate_field: (R, NL) complex128 S, shared by all structures.
        backend: the backend that computed them.
        point_moments: with `simulate(..., point_moments=True)` on a kernel backend, (mean, M2), each
            (3, R, NL) float64, of X = ln I (Bragg points 0), Re U and Im U over the n structures (the
            per-point moments of the dataset statistics, accumulated by the kernel); else None.
    """

    grid: Grid
    intensity: np.ndarray
    film_field: np.ndarray | None
    substrate_field: np.ndarray
    backend: str
    point_moments: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return int(self.intensity.shape[0])

    @property
    def X(self) -> np.ndarray:
        """(n, R, NL) network input: ln I with the Bragg points set to 0 (before standardisation)."""
        return network_input(self.intensity, self.grid.bragg)


def network_input(intensity: np.ndarray, bragg: np.ndarray) -> np.ndarray:
    """ln I with the points of the (NL,) `bragg` mask set to 0, in the dtype of `intensity`."""
    intensity = np.asarray(intensity)
    if intensity.shape[-1] != bragg.shape[0]:
        raise ValueError(f"intensity has {intensity.shape[-1]} points per rod, the Bragg mask {bragg.shape[0]}")
    with np.errstate(divide="ignore"):
        X = np.log(intensity)
    X[..., bragg] = 0
    return X


def simulate(
    structures: Structures,
    grid: Grid,
    *,
    backend: str | None = "auto",
    dtype: str | np.dtype = "float32",
    film_field: bool = True,
    out_intensity: np.ndarray | None = None,
    out_film_field: np.ndarray | None = None,
    threads: int = 0,
    point_moments: bool = False,
) -> Rods:
    """Simulate the rods of `structures` on `grid`.

    Args:
        structures: n structures of one model.
        grid: rods and L values.
        backend: "auto" (MAMBA_CTR_BACKEND, else compiled → numba → numpy), "compiled", "numba", "numpy".
        dtype: "float32" (default; U complex64) or "float64" (U complex128). Sums are float64 either way.
        film_field: False to compute the intensity only (U is still summed, not stored).
        out_intensity: a preallocated (n, R, NL) output for I, e.g. an np.memmap, written in place; its dtype
            must match `dtype`.
        out_film_field: the same for U (complex64 for float32, complex128 for float64).
        threads: OpenMP/numba threads, 0 for the runtime default.
        point_moments: also accumulate the per-point moments of X, Re U, Im U in the kernel's pass
            (`Rods.point_moments`; compiled and numba backends, with the film field; else None).

    Returns:
        Rods with intensity (n, R, NL) and film_field (n, R, NL) or None.
    """
    if not isinstance(structures, Structures):
        raise TypeError(f"structures must be a Structures batch, got {type(structures).__name__}")
    if not isinstance(grid, Grid):
        raise TypeError(f"grid must be a Grid, got {type(grid).__name__}")
    real_dtype = np.dtype(dtype)
    if real_dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 0:
        raise ValueError(f"threads must be an integer ≥ 0 (0 = default), got {threads!r}")
    complex_dtype = np.dtype(np.complex64 if real_dtype == np.float32 else np.complex128)
    shape = (len(structures), *grid.shape)
    intensity = _output("out_intensity", out_intensity, shape, real_dtype)
    field = _output("out_film_field", out_film_field, shape, complex_dtype) if film_field else None
    if not film_field and out_film_field is not None:
        raise ValueError("out_film_field was given but film_field=False")
    name = _backend.resolve(backend)
    tables, plan = cached_plan(structures.model, grid, name)

    if plan is None:  # the numpy reference
        for start in range(0, len(structures), _REFERENCE_BLOCK):
            block = slice(start, start + _REFERENCE_BLOCK)
            U, I = simulate_reference(structures[block], grid)
            intensity[block] = I
            if field is not None:
                field[block] = U
    moments = None
    if plan is not None:
        with_moments = point_moments and field is not None and len(structures) > 0
        groups = []
        for start in range(0, len(structures), _KERNEL_BLOCK):
            block = slice(start, start + _KERNEL_BLOCK)
            part = structures if len(structures) <= _KERNEL_BLOCK else structures[block]
            M = np.empty((-(-len(part) // MOMENT_GROUP), 6, *grid.shape)) if with_moments else None
            plan.run(**batch_arrays(part, tables), film_field=None if field is None else field[block],
                     intensity=intensity[block], threads=int(threads), bragg=grid.bragg, moments=M)
            if M is not None:
                groups.append(M)
        if with_moments:
            moments = merge_group_moments(np.concatenate(groups), len(structures))
    return Rods(grid=grid, intensity=intensity, film_field=field, substrate_field=tables.kernel.substrate,
                backend=name, point_moments=moments)


def merge_group_moments(groups: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, M2), each (3, R, NL), of n structures from the kernel's per-group moments (NG, 6, R, NL) (groups
    of MOMENT_GROUP structures, the last one shorter), combined in order by Chan's parallel update."""
    mean, m2 = groups[0, :3].copy(), groups[0, 3:].copy()
    count = min(n, MOMENT_GROUP)
    for g in range(1, groups.shape[0]):
        size = min(n - g * MOMENT_GROUP, MOMENT_GROUP)
        total = count + size
        delta = groups[g, :3] - mean
        mean += delta * (size / total)
        m2 += groups[g, 3:] + delta**2 * (count * size / total)
        count = total
    return mean, m2


_PLANS: dict[tuple[int, int], tuple[StructureModel, Grid, GridTables, dict[str, Any]]] = {}


def cached_plan(model: StructureModel, grid: Grid, backend: str) -> tuple[GridTables, Any]:
    """(grid_tables, kernel plan or None for "numpy") of (model, grid), built and checked once and reused
    while both objects live (both are immutable). `backend` is a concrete name (`_backend.resolve`)."""
    key = (id(model), id(grid))
    hit = _PLANS.get(key)
    if hit is None or hit[0] is not model or hit[1] is not grid:
        if len(_PLANS) >= _TABLE_CACHE_SIZE:
            _PLANS.pop(next(iter(_PLANS)))
        hit = _PLANS[key] = (model, grid, grid_tables(model, grid), {})  # holding the objects keeps their ids
    else:
        _PLANS[key] = _PLANS.pop(key)  # most recently used last
    plans = hit[3]
    if backend not in plans:
        plans[backend] = None if backend == "numpy" else _backend.plan(backend, hit[2].kernel)
    return hit[2], plans[backend]


def _output(name: str, given: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if given is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(given, np.ndarray):
        raise TypeError(f"{name} must be a numpy array (or np.memmap), got {type(given).__name__}")
    if given.shape != shape or given.dtype != dtype:
        raise ValueError(f"{name} must be {dtype} with shape {shape}, got {given.dtype} {given.shape}")
    if not (given.flags.c_contiguous and given.flags.writeable):
        raise ValueError(f"{name} must be a writeable C-contiguous array")
    return given
