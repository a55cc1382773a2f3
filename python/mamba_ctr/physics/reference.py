"""The numpy reference simulator: the definition of truth for the compiled and numba kernels.

Written to be read against physics.md, not to be fast: every atom's term
o_j · w · f(q) T(q) · e^{i(q_x x + q_y y)} · e^{i q_z z} is added explicitly, in float64.
"""

from __future__ import annotations

import numpy as np

from .grid import Grid
from .lowering import inplane_phase, roughness_factor, substrate_field
from .model import Structures


def film_field_reference(structures: Structures, grid: Grid) -> np.ndarray:
    """U(q) = Σ_j o_j Σ_site Σ_species w f T e^{i q·r}: (n, R, NL) complex128."""
    model = structures.model
    q, qz = grid.q, grid.qz
    heights = structures.heights  # (n, J, S) Å
    U = np.zeros((len(structures), *grid.shape), dtype=np.complex128)
    for s, site in enumerate(model.sites):
        inplane = inplane_phase(grid.h, grid.k, site.x, site.y)[:, None]  # (R, 1) e^{i(q_x x + q_y y)}
        # f(q) T(q) e^{i(q_x x + q_y y)} of each species this site may hold: (R, NL)
        scattering = {name: model.scatterers[name].factor(q) * inplane
                      for layer in model.species for name in layer[s]}
        for j, layer in enumerate(model.species):
            height_phase = np.exp(1j * heights[:, j, s, None] * qz[None, :])  # (n, NL) e^{i q_z z}
            for m, name in enumerate(layer[s]):
                weight = structures.occupancy[:, j] * structures.fraction[:, j, s, m]  # (n,)
                U += (weight[:, None] * height_phase)[:, None, :] * scattering[name][None]
    return U


def simulate_reference(structures: Structures, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """(U, I) in float64: U the film field, I = |S + U|² × β factor."""
    U = film_field_reference(structures, grid)
    intensity = np.abs(substrate_field(structures.model, grid)[None] + U) ** 2
    if np.any(structures.beta != 0):
        c = structures.model.substrate.c if structures.model.substrate is not None else grid.c_ref
        intensity *= roughness_factor(structures.beta, grid.qz, c)[:, None, :]
    return U, intensity
