"""Turn a structure model on a grid into the flat arrays of the kernel contract (docs/kernel.md).

Everything that depends only on (model, grid) is computed once in `GridTables`: the
kernel plan's tables (form-factor × Debye–Waller table, in-plane phase patterns of the
rods, substrate field S(q), index arrays) and the maps from structures to entries. Per
call, `batch_arrays` gives the site heights, entry weights and roughness factors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._kernel_args import PlanTables
from .grid import Grid
from .model import StructureModel, Structures


def inplane_phase(h: np.ndarray, k: np.ndarray, x: float, y: float) -> np.ndarray:
    """e^{2πi(hx + ky)} for integer rods, exact (±1, ±i) when hx + ky is a multiple of ¼."""
    turns = np.mod(np.asarray(h) * x + np.asarray(k) * y, 1.0)
    phase = np.exp(2j * np.pi * turns)
    quarter = turns * 4
    exact = np.abs(quarter - np.round(quarter)) < 1e-12
    table = np.array([1, 1j, -1, -1j, 1])
    phase[exact] = table[np.round(quarter[exact]).astype(int)]
    return phase


def substrate_field(model: StructureModel, grid: Grid) -> np.ndarray:
    """(R, NL) complex128 S(q) = F_bulk(q) / (e^{i q_z c_bulk} − 1); zero without a substrate.

    Diverges at the Bragg points (finite but round-off dominated there).
    """
    if model.substrate is None:
        return np.zeros(grid.shape, dtype=np.complex128)
    q, qz = grid.q, grid.qz
    F_bulk = np.zeros(grid.shape, dtype=np.complex128)
    for atom in model.substrate.atoms:
        f = model.scatterers[atom.scatterer].factor(q)
        xy = inplane_phase(grid.h, grid.k, atom.x, atom.y)[:, None]
        F_bulk += atom.occupancy * f * xy * np.exp(1j * qz * model.substrate.c * atom.z)[None, :]
    return F_bulk / (np.exp(1j * qz * model.substrate.c) - 1.0)[None, :]


def roughness_factor(beta: np.ndarray, qz: np.ndarray, c: float) -> np.ndarray:
    """(n, NL) Robinson's β factor (1−β)² / (1 + β² − 2β cos(q_z c)) on I; qz in Å⁻¹, c in Å."""
    beta = np.asarray(beta, dtype=np.float64)[:, None]
    return (1 - beta) ** 2 / (1 + beta**2 - 2 * beta * np.cos(np.asarray(qz)[None, :] * c))


@dataclass(frozen=True, eq=False)
class GridTables:
    """Per (model, grid) constants: the kernel plan's tables and what turns structures into per-call arrays."""

    kernel: PlanTables         # the structure-independent kernel inputs (docs/kernel.md)
    scatterer_names: tuple[str, ...]  # (NSP,) species of ff_re / ff_im
    entry_layer: np.ndarray    # (E,) layer of each entry
    entry_slot: np.ndarray     # (E,) flat index into (J, S, M) of the fraction array
    roughness_c: float         # Å, period used by the β factor


def grid_tables(model: StructureModel, grid: Grid) -> GridTables:
    names = tuple(sorted({n for layer in model.species for site in layer for n in site}))
    q = grid.q
    factors = np.stack([model.scatterers[n].factor(q) for n in names]).astype(np.complex128)
    ff_re = np.ascontiguousarray(factors.real)
    anomalous = any(model.scatterers[n].f_double_prime != 0 for n in names)
    ff_im = np.ascontiguousarray(factors.imag) if anomalous else np.zeros(0)

    columns: list[tuple[float, float]] = []
    site_column = []
    for site in model.sites:
        key = (round(site.x % 1.0, 12), round(site.y % 1.0, 12))
        if key not in columns:
            columns.append(key)
        site_column.append(columns.index(key))

    S, M = model.n_sites, model.max_species
    pairs: list[tuple[int, int]] = []
    entry_site, entry_layer, entry_slot, entry_pair = [], [], [], []
    for j, layer in enumerate(model.species):
        for s, species in enumerate(layer):
            for m, name in enumerate(species):
                pair = (site_column[s], names.index(name))
                if pair not in pairs:
                    pairs.append(pair)
                entry_site.append(j * S + s)
                entry_layer.append(j)
                entry_slot.append((j * S + s) * M + m)
                entry_pair.append(pairs.index(pair))

    phase = np.stack([inplane_phase(grid.h, grid.k, x, y) for x, y in columns], axis=1)  # (R, C)
    patterns, rod_pattern = np.unique(phase, axis=0, return_inverse=True)
    kernel = PlanTables(
        entry_site=np.asarray(entry_site, np.int64), entry_pair=np.asarray(entry_pair, np.int64),
        pair_column=np.array([p[0] for p in pairs], np.int64),
        pair_species=np.array([p[1] for p in pairs], np.int64),
        pattern_phase=np.ascontiguousarray(patterns, dtype=np.complex128),
        rod_pattern=np.asarray(rod_pattern, np.int64).reshape(-1), qz=np.ascontiguousarray(grid.qz),
        uniform_step=2 * np.pi * grid.L_run_step / grid.c_ref, ff_re=ff_re, ff_im=ff_im,
        substrate=substrate_field(model, grid), n_sites=model.n_layers * S,
    )
    return GridTables(kernel=kernel, scatterer_names=names, entry_layer=np.asarray(entry_layer, np.int64),
                      entry_slot=np.asarray(entry_slot, np.int64),
                      roughness_c=model.substrate.c if model.substrate is not None else grid.c_ref)


def batch_arrays(structures: Structures, tables: GridTables) -> dict[str, np.ndarray | None]:
    """Per-call kernel inputs: z (n, S_total) Å, weight (n, E), rough (n, NL) or None (no roughness)."""
    n = len(structures)
    z = np.ascontiguousarray(structures.heights.reshape(n, -1))
    fraction = structures.fraction.reshape(n, -1)
    weight = np.ascontiguousarray(
        structures.occupancy[:, tables.entry_layer] * fraction[:, tables.entry_slot]
    )
    rough = None
    if np.any(structures.beta != 0):
        rough = roughness_factor(structures.beta, tables.kernel.qz, tables.roughness_c)
    return {"z": z, "weight": weight, "rough": rough}
