"""A film (and its substrate) from a list of atoms: any in-plane supercell, mixed sites, per-atom Debye–Waller.

`build_film(film, substrate)` turns an `AtomStructure` (read from XYZ, `.sur`, ...) into the package's layered
`StructureModel` and one `Structures`, so that `mamba_ctr.simulate.simulate` (the compiled kernel) serves it.

How atoms become the layered model:

* Scatterers: one per (species, U_iso) pair, named "<species> U=<U_iso>", f0 from xraydb (Waasmaier–Kirfel;
  `ions` maps a file's species to the ion whose f0 is used, e.g. {"Sr": "Sr2+"}), Debye–Waller
  exp(−q² U_iso / 2). The kernel groups atoms of one scatterer in one in-plane column by itself.
* Sites: atoms at the same position (within `SAME_SITE` = 1e-3 Å, in-plane periodic) form one site holding a
  mixture (La/Sr on A, Mn/Ti on B); their occupancies sum to at most 1. Two different positions closer than
  `min_distance` (default 0.5 Å) are refused as overlapping, also against the top substrate cell.
* Layers: one in-plane column sets the layer starts (its sites' heights; `layer_column`, or by default among
  the columns holding at least half as many sites as the fullest, the one with the widest spacing); every site
  joins the highest layer starting at most a quarter of the smallest layer spacing above it. Layer j starts at
  Z_j (Z_0 = 0), c_j = Z_{j+1} − Z_j (the top layer repeats the one below), z = (height − Z_j) / c_j. Every
  layer occupancy is 1; an atom's occupancy is its species fraction on its site.
* Substrate: a bulk cell (fractional, orthogonal) repeated to the film's in-plane cell (which must be an
  integer multiple of it) and semi-infinitely below z = 0; its c is the unit of L (`AtomFilm.c_ref`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .atoms import Atom, AtomStructure
from .form_factors import Scatterer
from .model import Site, StructureModel, Structures, Substrate, SubstrateAtom

SAME_SITE = 1e-3
"""Å: atoms closer than this share one site (a species mixture)."""


@dataclass(frozen=True, eq=False)
class AtomFilm:
    """A film built from atoms.

    Attributes:
        model: the layered StructureModel (film layers above the substrate).
        nominal: the structure of the file, n = 1.
        a, b: the film's in-plane cell edges, Å (the rods of `model` are indexed in this cell).
        c_ref: Å, the unit of L (the substrate's c, else the film cell's c).
        layer_start: (J,) Z_j, Å; layer_c: (J,) c_j, Å.
        site_layer, site_slot: (G,) layer j and model-site index s of every occupied site ("group").
        site_height: (G,) height of every group, Å.
        site_species: per group, the scatterer names it holds (the order of `site_occupancy`'s columns).
        site_occupancy: (G, M) occupancy of each species of the group (0 past its species).
        scatterer_source: scatterer name → (species as in the file, U_iso Å²).
        atom_group, atom_member: (N,) for every input atom, its group and its position in the group.
    """

    model: StructureModel
    nominal: Structures
    a: float
    b: float
    c_ref: float
    layer_start: np.ndarray
    layer_c: np.ndarray
    site_layer: np.ndarray
    site_slot: np.ndarray
    site_height: np.ndarray
    site_species: tuple[tuple[str, ...], ...]
    site_occupancy: np.ndarray
    scatterer_source: Mapping[str, tuple[str, float]]
    atom_group: np.ndarray
    atom_member: np.ndarray

    @property
    def n_groups(self) -> int:
        return int(self.site_height.size)

    def structures(self, heights: np.ndarray | None = None, occupancy: np.ndarray | None = None) -> Structures:
        """A batch of this film with group heights (n, G) in Å and species occupancies (n, G, M).

        Either may be None (the file's values). Vectorised: a fit calls it once per batch of parameter vectors.
        """
        G, M = self.site_occupancy.shape
        h = self.site_height[None] if heights is None else np.atleast_2d(np.asarray(heights, np.float64))
        occ = self.site_occupancy[None] if occupancy is None else np.asarray(occupancy, np.float64)
        if occ.ndim == 2:
            occ = occ[None]
        n = max(h.shape[0], occ.shape[0])
        if h.shape[1:] != (G,) or occ.shape[1:] != (G, M):
            raise InputError(f"heights must be (n, {G}) Å and occupancy (n, {G}, {M}); got {h.shape}, {occ.shape}")
        h, occ = np.broadcast_to(h, (n, G)), np.broadcast_to(occ, (n, G, M))
        J, S = self.model.n_layers, self.model.n_sites
        z = np.zeros((n, J, S))
        z[:, self.site_layer, self.site_slot] = (h - self.layer_start[self.site_layer]) / self.layer_c[self.site_layer]
        fraction = np.zeros((n, J, S, self.model.max_species))
        fraction[:, self.site_layer, self.site_slot, :M] = occ
        return Structures(self.model, np.broadcast_to(self.layer_c, (n, J)), z, fraction, np.ones((n, J)))

    def atoms(self, structures: Structures | None = None, index: int = 0, title: str = "") -> AtomStructure:
        """Structure `index` of `structures` (default: the nominal) as atoms in Å, in the input atom order."""
        structures = self.nominal if structures is None else structures
        heights = structures.heights[index][self.site_layer, self.site_slot]
        fraction = structures.fraction[index][self.site_layer, self.site_slot]
        atoms = []
        for group, member in zip(self.atom_group, self.atom_member, strict=True):
            site = self.model.sites[self.site_slot[group]]
            species, u_iso = self.scatterer_source[self.site_species[group][member]]
            atoms.append(Atom(species, site.x * self.a, site.y * self.b, float(heights[group]), u_iso,
                              float(fraction[group, member])))
        return AtomStructure(tuple(atoms), (self.a, self.b, self.c_ref, 90.0, 90.0, 90.0), "angstrom", title)


def build_film(
    film: AtomStructure,
    substrate: AtomStructure | None = None,
    *,
    cell: tuple[float, float] | None = None,
    ions: Mapping[str, str] | None = None,
    min_distance: float = 0.5,
    c_ref: float | None = None,
    layer_column: tuple[float, float] | None = None,
) -> AtomFilm:
    """The layered model of `film` above a semi-infinite `substrate` (see the module docstring).

    Args:
        film: the film's atoms; Å positions need `cell` (a, b in Å) unless `film.cell` is set.
        substrate: a bulk cell (fractional, orthogonal) or None (free-standing film).
        cell: the film's in-plane (a, b), Å, overriding `film.cell`.
        ions: species → ion whose f0 is used (e.g. {"Mn": "Mn3+"}); species not listed use their own name.
        min_distance: Å; two different atom positions closer than this are an error.
        c_ref: Å, the unit of L; default the substrate's c (else the film cell's c, else 3.905).
        layer_column: fractional in-plane (x, y) of the atom column whose sites start the layers (default: chosen
            as described in the module docstring).
    """
    a, b, c_film = _film_cell(film, cell)
    xyz = _positions_angstrom(film, a, b, c_film)
    sites = _sites(film.atoms, xyz, a, b)
    scatterers: dict[str, Scatterer] = {}
    sources: dict[str, tuple[str, float]] = {}
    names = [[_scatterer(film.atoms[i], ions, scatterers, sources) for i in members] for members in sites["members"]]
    sub = None if substrate is None else _substrate(substrate, a, b, ions, scatterers, sources)
    _check_overlaps(sites["xyz"], a, b, min_distance, sub)
    if c_ref is None:
        c_ref = sub.c if sub is not None else (c_film or 3.905)
    return _layered(film, sites, names, scatterers, sources, sub, a, b, float(c_ref), layer_column)


def _film_cell(film: AtomStructure, cell) -> tuple[float, float, float | None]:
    if cell is not None:
        return float(cell[0]), float(cell[1]), (film.cell[2] if film.cell is not None else None)
    if film.cell is None:
        raise InputError("the film's in-plane cell is unknown: pass cell=(a, b) in Å (an XYZ file has none)")
    if any(abs(angle - 90.0) > 1e-9 for angle in film.cell[3:]):
        raise InputError(f"the film's cell must be orthogonal, got angles {film.cell[3:]}")
    return film.cell[0], film.cell[1], film.cell[2]


def _positions_angstrom(film: AtomStructure, a: float, b: float, c: float | None) -> np.ndarray:
    xyz = film.positions
    if film.units == "fractional":
        if c is None:
            raise InputError("fractional film positions need the cell's c")
        xyz = xyz * np.array([a, b, c])
    return xyz


def _sites(atoms, xyz: np.ndarray, a: float, b: float) -> dict:
    """Cluster atoms at one position into sites; check occupancies and duplicate species."""
    members: list[list[int]] = []
    centres = np.empty((0, 3))
    for i, p in enumerate(xyz):
        near = np.flatnonzero(_distance(p, centres.copy(), a, b) < SAME_SITE)
        if near.size:
            members[int(near[0])].append(i)
        else:
            members.append([i])
            centres = np.vstack([centres, p])
    for site in members:
        species = [atoms[i].species for i in site]
        if len(set(species)) != len(species):
            raise InputError(f"atom {site[0] + 1} ({species[0]}) is listed twice at one position: "
                             "give each species once per site")
        total = sum(atoms[i].occupancy for i in site)
        if total > 1 + 1e-9:
            raise InputError(f"occupancies on the site of atom {site[0] + 1} ({'/'.join(species)} at "
                             f"{tuple(np.round(xyz[site[0]], 4))} Å) sum to {total:.6g} > 1")
    return {"members": members, "xyz": centres}


def _distance(p: np.ndarray, q: np.ndarray, a: float, b: float) -> np.ndarray:
    """(m,) distances from point p to points q (m, 3), Å, with in-plane periodicity (orthogonal cell)."""
    d = q - p
    d[:, 0] -= a * np.round(d[:, 0] / a)
    d[:, 1] -= b * np.round(d[:, 1] / b)
    return np.sqrt((d**2).sum(axis=1))


def _check_overlaps(xyz: np.ndarray, a: float, b: float, min_distance: float, sub: Substrate | None) -> None:
    points = xyz
    if sub is not None:  # the top substrate cell, at −c … 0
        top = np.array([(t.x * a, t.y * b, (t.z - 1.0) * sub.c) for t in sub.atoms])
        points = np.concatenate([xyz, top])
    for i in range(len(xyz)):
        d = _distance(xyz[i], points[i + 1:].copy(), a, b)
        close = np.flatnonzero(d < min_distance)
        if close.size:
            j = i + 1 + int(close[0])
            other = f"site at {tuple(np.round(points[j], 3))} Å" if j < len(xyz) else "the substrate's top cell"
            raise InputError(f"overlapping atoms: the site at {tuple(np.round(xyz[i], 3))} Å is {d[close[0]]:.3f} Å "
                             f"from the {other} (closer than {min_distance} Å)")


def _scatterer(atom: Atom, ions, scatterers: dict, sources: dict) -> str:
    name = f"{atom.species} U={atom.u_iso!r}"
    if name not in scatterers:
        ion = (ions or {}).get(atom.species, atom.species)
        scatterers[name] = Scatterer(name, ion, atom.u_iso, source="xraydb")
        sources[name] = (atom.species, atom.u_iso)
    return name


def _substrate(bulk: AtomStructure, a: float, b: float, ions, scatterers: dict, sources: dict) -> Substrate:
    cell = bulk.cell
    if cell is None or any(abs(angle - 90.0) > 1e-9 for angle in cell[3:]):
        raise InputError("the substrate must be a bulk cell with an orthogonal cell (a, b, c, 90, 90, 90)")
    bulk = bulk.to_units("fractional")
    na, nb = a / cell[0], b / cell[1]
    if abs(na - round(na)) > 1e-6 * na or abs(nb - round(nb)) > 1e-6 * nb or round(na) < 1 or round(nb) < 1:
        raise InputError(f"the film's in-plane cell ({a} × {b} Å) must be an integer multiple of the substrate's "
                         f"({cell[0]} × {cell[1]} Å)")
    na, nb = round(na), round(nb)
    atoms = []
    for atom in bulk.atoms:
        name = _scatterer(atom, ions, scatterers, sources)
        for i in range(na):
            for j in range(nb):
                atoms.append(SubstrateAtom(name, ((atom.x % 1.0) + i) / na, ((atom.y % 1.0) + j) / nb, atom.z,
                                           atom.occupancy))
    return Substrate(tuple(atoms), float(cell[2]))


def _reference_column(columns: np.ndarray, site_column: np.ndarray, xyz: np.ndarray, layer_column) -> int:
    """The column whose sites start the layers: the given one, else, among the columns holding at least half
    as many sites as the fullest, the one whose sites are farthest apart (the A column of a perovskite, not
    its B/O_ap column)."""
    if layer_column is not None:
        d = np.abs((columns - np.mod(np.asarray(layer_column, dtype=np.float64), 1.0) + 0.5) % 1.0 - 0.5).sum(axis=1)
        if d.min() > 1e-6:
            raise InputError(f"no atom column at the in-plane position {tuple(layer_column)} (fractional)")
        return int(np.argmin(d))
    counts = np.bincount(site_column)

    def spacing(column: int) -> float:
        heights = np.sort(xyz[site_column == column, 2])
        return float(np.diff(heights).min()) if heights.size > 1 else 0.0

    candidates = [col for col in range(len(columns)) if counts[col] * 2 >= counts.max()]
    return max(candidates, key=lambda col: (round(spacing(col), 1), counts[col]))


def _layered(film, sites, names, scatterers, sources, sub, a, b, c_ref, layer_column) -> AtomFilm:
    xyz = sites["xyz"]
    frac_xy = np.round(np.mod(xyz[:, :2] / np.array([a, b]), 1.0), 12) % 1.0
    columns, site_column = np.unique(frac_xy, axis=0, return_inverse=True)
    site_column = site_column.reshape(-1)
    starts = np.sort(xyz[site_column == _reference_column(columns, site_column, xyz, layer_column), 2])
    spacing = np.diff(starts).min() if starts.size > 1 else np.inf
    tol = 0.25 * spacing if np.isfinite(spacing) else np.inf
    layer = np.clip(np.searchsorted(starts, xyz[:, 2] + tol, side="right") - 1, 0, None)
    J = int(layer.max()) + 1
    Z = np.concatenate([[0.0], starts[1:J]])
    if J > 1 and Z[1] <= 0:
        raise InputError("the film must lie above z = 0 (the substrate is below): its second layer starts at "
                         f"{Z[1]:.3f} Å")
    c = np.diff(Z) if J > 1 else np.array([], dtype=np.float64)
    c = np.append(c, c[-1] if J > 1 else (c_ref if sub is None else sub.c))

    # model sites: (column, slot) with slot the rank of a site among its layer's sites in that column
    order = np.lexsort((xyz[:, 2], site_column, layer))
    slot_in_column = np.zeros(len(xyz), dtype=np.int64)
    seen: dict[tuple[int, int], int] = {}
    for g in order:
        key = (int(layer[g]), int(site_column[g]))
        slot_in_column[g] = seen.get(key, 0)
        seen[key] = slot_in_column[g] + 1
    pairs = sorted({(int(site_column[g]), int(slot_in_column[g])) for g in range(len(xyz))})
    model_sites = tuple(Site(f"c{col}" + (f".{slot}" if slot else ""), float(columns[col][0]), float(columns[col][1]))
                        for col, slot in pairs)
    site_slot = np.array([pairs.index((int(site_column[g]), int(slot_in_column[g]))) for g in range(len(xyz))])
    species = [[() for _ in model_sites] for _ in range(J)]
    for g in range(len(xyz)):
        species[layer[g]][site_slot[g]] = tuple(names[g])
    M = max(len(n) for n in names)
    occupancy = np.zeros((len(xyz), M))
    atom_group = np.zeros(len(film.atoms), dtype=np.int64)
    atom_member = np.zeros(len(film.atoms), dtype=np.int64)
    for g, members in enumerate(sites["members"]):
        for m, i in enumerate(members):
            occupancy[g, m] = film.atoms[i].occupancy
            atom_group[i], atom_member[i] = g, m
    model = StructureModel(scatterers, model_sites, tuple(tuple(layer_species) for layer_species in species), sub)
    built = AtomFilm(
        model=model, nominal=None, a=a, b=b, c_ref=c_ref, layer_start=Z, layer_c=c,  # type: ignore[arg-type]
        site_layer=layer.astype(np.int64), site_slot=site_slot.astype(np.int64), site_height=xyz[:, 2].copy(),
        site_species=tuple(tuple(n) for n in names), site_occupancy=occupancy, scatterer_source=sources,
        atom_group=atom_group, atom_member=atom_member,
    )
    object.__setattr__(built, "nominal", built.structures())
    return built
