"""The ABO3 perovskite film of the MAMBA paper: scatterers, sites, substrate (physics.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .form_factors import Scatterer
from .grid import SRTIO3_A
from .model import Site, StructureModel, Structures, Substrate, SubstrateAtom

# U_iso in Å², full precision: column 5 of the first seven atom rows of LSMO_newdat2.XYZ (Al takes Mn's).
PAPER_U_ISO = {
    "Sr": 0.00643736686658,
    "La": 0.00954291456864,
    "Ti": 0.037284080873,
    "Al": 0.0151313235775,
    "O_ap": 0.00100182498507,
    "O_eq": 0.0364082047733,
}
PAPER_IONS = {"Sr": "Sr2+", "La": "La3+", "Ti": "Ti4+", "Al": "Al3+", "O_ap": "O", "O_eq": "O"}

SITES = (
    Site("A", 0.0, 0.0),
    Site("B", 0.5, 0.5),
    Site("O_ap", 0.5, 0.5),  # apical O, in the A plane
    Site("O_x", 0.5, 0.0),   # equatorial O, in the B plane
    Site("O_y", 0.0, 0.5),
)
SITE_NAMES = tuple(site.name for site in SITES)


@dataclass(frozen=True)
class Column:
    """An atom column: fractional in-plane position (x, y) and the scatterers that sit on it."""

    name: str
    x: float
    y: float
    species: tuple[str, ...]


PEROVSKITE_COLUMNS: tuple[Column, ...] = (
    Column("A", 0.0, 0.0, ("Sr", "La")),
    Column("B+O_ap", 0.5, 0.5, ("Ti", "Al", "O_ap")),
    Column("O_x", 0.5, 0.0, ("O_eq",)),
    Column("O_y", 0.0, 0.5, ("O_eq",)),
)
"""The four atom columns of the ABO3 cell (the distinct in-plane positions of SITES): A; B and apical O; the two
equatorial O. Used by the density (`reconstruct.density`) and the COBRA column support."""
NOMINAL_Z = {"A": 0.0, "B": 0.5, "O_ap": 0.0, "O_x": 0.5, "O_y": 0.5}


def paper_scatterers() -> dict[str, Scatterer]:
    return {name: Scatterer(name, PAPER_IONS[name], PAPER_U_ISO[name]) for name in PAPER_U_ISO}


def srtio3_substrate() -> Substrate:
    """Nominal SrTiO3 unit cell (z_B = z_Ox = z_Oy = ½, z_Oap = 0), c = 3.905 Å."""
    return Substrate(
        atoms=(
            SubstrateAtom("Sr", 0.0, 0.0, 0.0),
            SubstrateAtom("Ti", 0.5, 0.5, 0.5),
            SubstrateAtom("O_ap", 0.5, 0.5, 0.0),
            SubstrateAtom("O_eq", 0.5, 0.0, 0.5),
            SubstrateAtom("O_eq", 0.0, 0.5, 0.5),
        ),
        c=SRTIO3_A,
    )


def perovskite_model(a_species: Sequence[tuple[str, ...]], b_species: Sequence[str],
                     scatterers: dict[str, Scatterer] | None = None) -> StructureModel:
    """A stack of ABO3 layers on SrTiO3; a_species[j] is ("Sr",), ("La",) or ("Sr", "La")."""
    if len(a_species) != len(b_species):
        raise ValueError(f"need one A and one B entry per layer, got {len(a_species)} and {len(b_species)}")
    species = tuple((tuple(a), (b,), ("O_ap",), ("O_eq",), ("O_eq",)) for a, b in zip(a_species, b_species,
                                                                                         strict=True))
    return StructureModel(scatterers or paper_scatterers(), SITES, species, srtio3_substrate())


def perovskite_structures(
    model: StructureModel, c, z_B, z_Oap, z_Ox, z_Oy, sr_fraction, occupancy, beta=None,
) -> Structures:
    """Structures of a perovskite model from per-layer arrays, each (n, J) (or (J,) for one structure).

    sr_fraction is the Sr share of the A site; on a pure La site it must be 0, on a pure Sr site 1.
    """
    arrays = [np.atleast_2d(np.asarray(a, dtype=np.float64)) for a in (c, z_B, z_Oap, z_Ox, z_Oy,
                                                                        sr_fraction, occupancy)]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"per-layer arrays must all have the same shape (n, J), got {sorted(shapes)}")
    c, z_B, z_Oap, z_Ox, z_Oy, sr, occupancy = arrays
    n, J = c.shape
    if J != model.n_layers:
        raise ValueError(f"expected {model.n_layers} layers, got {J}")
    z = np.stack([np.zeros_like(c), z_B, z_Oap, z_Ox, z_Oy], axis=-1)
    fraction = np.zeros((n, J, len(SITES), model.max_species))
    fraction[:, :, 1:, 0] = 1.0
    for j, layer in enumerate(model.species):
        a = layer[0]
        if a == ("Sr", "La"):
            fraction[:, j, 0, 0], fraction[:, j, 0, 1] = sr[:, j], 1.0 - sr[:, j]
        else:
            expected = 1.0 if a == ("Sr",) else 0.0
            if np.any(np.abs(sr[:, j] - expected) > 1e-12):
                raise ValueError(
                    f"layer {j} holds only {a[0]} on its A site: sr_fraction must be {expected:g}, "
                    f"got {sr[:, j].min():g}..{sr[:, j].max():g}"
                )
            fraction[:, j, 0, 0] = 1.0
    if beta is not None:
        beta = np.broadcast_to(np.asarray(beta, dtype=np.float64), (n,))
    return Structures(model, c, z, fraction, occupancy, beta)


def perovskite_parameters(structures: Structures) -> dict[str, np.ndarray]:
    """Named per-layer parameters (n, J): c, z_B, z_Oap, z_Ox, z_Oy, sr_fraction, occupancy."""
    z = structures.z
    sr = np.zeros_like(structures.c)
    for j, layer in enumerate(structures.model.species):
        a = layer[0]
        if "Sr" in a:
            sr[:, j] = structures.fraction[:, j, 0, a.index("Sr")]
    return {
        "c": structures.c.copy(), "z_B": z[:, :, 1].copy(), "z_Oap": z[:, :, 2].copy(),
        "z_Ox": z[:, :, 3].copy(), "z_Oy": z[:, :, 4].copy(), "sr_fraction": sr,
        "occupancy": structures.occupancy.copy(), "beta": structures.beta.copy(),
    }
