"""Layered structure model: a template of sites and scatterers, and batches of structures.

A film is a stack of J layers above a semi-infinite substrate. Every layer has
the same S sites (fractional in-plane x, y in the in-plane cell, which may be a
supercell), each site holds one or more scatterers (a mixture). Per structure
and layer: the layer height c_j (Å), each site's fractional height z, each
species' fraction on each site, and the layer occupancy. Layer j starts at
Z_j = Σ_{i<j} c_i and an atom sits at Z_j + c_j · z.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .form_factors import Scatterer


@dataclass(frozen=True)
class Site:
    """A site of every layer: a name and its fractional in-plane position (x, y) in the cell."""

    name: str
    x: float
    y: float


@dataclass(frozen=True)
class SubstrateAtom:
    """An atom of the substrate's unit cell: scatterer name and fractional (x, y, z)."""

    scatterer: str
    x: float
    y: float
    z: float
    occupancy: float = 1.0


@dataclass(frozen=True)
class Substrate:
    """Semi-infinite substrate below z = 0: one unit cell of height c (Å), repeated downwards."""

    atoms: tuple[SubstrateAtom, ...]
    c: float


@dataclass(frozen=True, eq=False)
class StructureModel:
    """The template shared by a batch of structures.

    Attributes:
        scatterers: name → Scatterer.
        sites: the S sites of every layer.
        species: `species[j][s]` is the tuple of scatterer names that site s of layer j may hold.
        substrate: the semi-infinite substrate (None: a free-standing film).
    """

    scatterers: Mapping[str, Scatterer]
    sites: tuple[Site, ...]
    species: tuple[tuple[tuple[str, ...], ...], ...]
    substrate: Substrate | None = None

    def __post_init__(self) -> None:
        if not self.sites:
            raise ValueError("a structure model needs at least one site per layer")
        if not self.species:
            raise ValueError("a structure model needs at least one layer")
        for j, layer in enumerate(self.species):
            if len(layer) != len(self.sites):
                raise ValueError(
                    f"layer {j} lists species for {len(layer)} sites, expected {len(self.sites)} "
                    f"({', '.join(s.name for s in self.sites)})"
                )
            for s, names in enumerate(layer):
                for name in names:
                    self._check_scatterer(name, f"site {self.sites[s].name} of layer {j}")
        if self.substrate is not None:
            for atom in self.substrate.atoms:
                self._check_scatterer(atom.scatterer, "the substrate")

    def _check_scatterer(self, name: str, where: str) -> None:
        if name not in self.scatterers:
            raise ValueError(
                f"unknown species {name!r} in {where}: known are {', '.join(sorted(self.scatterers))}"
            )

    @property
    def n_layers(self) -> int:
        return len(self.species)

    @property
    def n_sites(self) -> int:
        return len(self.sites)

    @property
    def max_species(self) -> int:
        """M: the most species any site holds (the last axis of `Structures.fraction`)."""
        return max(len(names) for layer in self.species for names in layer)

    def site_index(self, name: str) -> int:
        for index, site in enumerate(self.sites):
            if site.name == name:
                return index
        raise ValueError(f"unknown site {name!r}: sites are {', '.join(s.name for s in self.sites)}")


@dataclass(eq=False)
class Structures:
    """A batch of n structures of one StructureModel (all arrays float64).

    Attributes:
        model: the template.
        c: (n, J) layer heights, Å.
        z: (n, J, S) fractional heights of the sites within their layer.
        fraction: (n, J, S, M) fraction of each species of `model.species[j][s]` on the site
            (entries past the site's species count are ignored and must be 0).
        occupancy: (n, J) layer occupancies in [0, 1].
        beta: (n,) β roughness (0 = none), applied to I.
    """

    model: StructureModel
    c: np.ndarray
    z: np.ndarray
    fraction: np.ndarray
    occupancy: np.ndarray
    beta: np.ndarray = field(default=None)  # type: ignore[assignment,arg-type]

    def __post_init__(self) -> None:
        self.c = _float_array("c", self.c)
        n = self.c.shape[0] if self.c.ndim == 2 else -1
        J, S, M = self.model.n_layers, self.model.n_sites, self.model.max_species
        _expect_shape("c", self.c, (n, J))
        self.z = _float_array("z", self.z)
        _expect_shape("z", self.z, (n, J, S))
        self.fraction = _float_array("fraction", self.fraction)
        _expect_shape("fraction", self.fraction, (n, J, S, M))
        self.occupancy = _float_array("occupancy", self.occupancy)
        _expect_shape("occupancy", self.occupancy, (n, J))
        self.beta = np.zeros(n) if self.beta is None else _float_array("beta", self.beta)
        _expect_shape("beta", self.beta, (n,))
        self._validate_values()

    def _validate_values(self) -> None:
        present = self.occupancy > 0
        if np.any(self.c[present] <= 0):
            raise ValueError(f"layer heights c must be > 0 Å where a layer is present, got min {self.c.min()}")
        if np.any(self.occupancy < 0) or np.any(self.occupancy > 1):
            raise ValueError(
                f"occupancy must lie in [0, 1], got values in [{self.occupancy.min()}, {self.occupancy.max()}]"
            )
        if np.any(self.fraction < 0) or np.any(self.fraction > 1):
            raise ValueError(
                f"species fractions must lie in [0, 1], got values in "
                f"[{self.fraction.min()}, {self.fraction.max()}]"
            )
        if np.any(self.fraction.sum(axis=-1) > 1 + 1e-9):
            raise ValueError("the species fractions of a site must sum to at most 1")
        if np.any(self.fraction * ~self._species_mask() != 0):
            raise ValueError("fraction has non-zero entries past a site's species list (must be 0)")
        if np.any((self.beta < 0) | (self.beta >= 1)):
            raise ValueError(f"β roughness must lie in [0, 1), got [{self.beta.min()}, {self.beta.max()}]")

    def _species_mask(self) -> np.ndarray:
        """(J, S, M) True where species[j][s] has an m-th entry."""
        J, S, M = self.model.n_layers, self.model.n_sites, self.model.max_species
        mask = np.zeros((J, S, M), dtype=bool)
        for j, layer in enumerate(self.model.species):
            for s, names in enumerate(layer):
                mask[j, s, : len(names)] = True
        return mask

    def __len__(self) -> int:
        return int(self.c.shape[0])

    @property
    def layer_start(self) -> np.ndarray:
        """(n, J) Z_j = Σ_{i<j} c_i, Å (layers of zero occupancy still count their c)."""
        start = np.zeros_like(self.c)
        np.cumsum(self.c[:, :-1], axis=1, out=start[:, 1:])
        return start

    @property
    def heights(self) -> np.ndarray:
        """(n, J, S) absolute site heights Z_j + c_j z, Å."""
        return self.layer_start[:, :, None] + self.c[:, :, None] * self.z

    def __getitem__(self, index) -> Structures:
        """A sub-batch (slice, integer array or boolean mask along n)."""
        if isinstance(index, (int, np.integer)):
            index = slice(int(index), int(index) + 1 if index != -1 else None)
        # a sub-batch of a validated batch is valid: skip __post_init__ (streams slice per batch)
        part = object.__new__(Structures)
        part.model = self.model
        for name in ("c", "z", "fraction", "occupancy", "beta"):
            setattr(part, name, np.ascontiguousarray(getattr(self, name)[index]))
        return part

    @classmethod
    def concatenate(cls, parts: Sequence[Structures]) -> Structures:
        if not parts:
            raise ValueError("need at least one batch to concatenate")
        model = parts[0].model
        if any(p.model is not model for p in parts):
            raise ValueError("can only concatenate structures of the same model")
        return cls(model, *(np.concatenate([getattr(p, name) for p in parts])
                            for name in ("c", "z", "fraction", "occupancy", "beta")))


def _float_array(name: str, value) -> np.ndarray:
    try:
        array = np.ascontiguousarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be an array of numbers: {error}") from None
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got {np.count_nonzero(~np.isfinite(array))} NaN/inf values")
    return array


def _expect_shape(name: str, array: np.ndarray, shape: tuple[int, ...]) -> None:
    ok = array.ndim == len(shape) and all(e < 0 or a == e for a, e in zip(array.shape, shape, strict=True))
    if not ok:
        shown = "(" + ", ".join("n" if e < 0 else str(e) for e in shape) + ")"
        raise ValueError(f"{name} must have shape {shown}, got {array.shape}")
