"""Built-in structure families (physics.md): the paper's 12-layer film and the thickness family.

Every preset has a grid, a `sample(n, seed, start)` that draws structures keyed by
their index (structure i of a seed is the same whatever batch draws it), its
labels and its nominal structure.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._checks import check_count
from .._files import read_toml
from ..errors import InputError
from .grid import SRTIO3_A, Grid, paper_grid
from .model import StructureModel, Structures
from .perovskite import (
    NOMINAL_Z,
    perovskite_model,
    perovskite_parameters,
    perovskite_structures,
)

BLOCK = 1024
"""Structures per random block: block b of a seed is drawn from SeedSequence(seed, spawn_key=(b,))."""
_BETA_TRIES = 32  # candidate p-vectors per structure; all 32 rejected has probability ~1e-20

LAO_C = 3.79
"""Nominal layer height of the LaAlO3 film, Å."""


@dataclass(frozen=True)
class LabelSpec:
    """One label of physics.md: its group (atom type), the range it is sampled from and its nominal value.

    `identifiable` is False for labels no data can determine (the top layer's c); they are
    reported but left out of R² targets and averages.
    """

    name: str
    group: str
    low: float
    high: float
    nominal: float
    identifiable: bool = True
    unit: str = "Å"


@dataclass(frozen=True, eq=False)
class PerovskitePreset:
    """SrTiO3/LaAlO3 films: layer 0 nominal SrTiO3, n_sub variable SrTiO3 layers, then the film.

    Attributes:
        name, description: identification.
        n_sub: variable substrate-like SrTiO3 layers (layers 1..n_sub).
        film_layers: (min, max) LaAlO3 layers; a film thinner than max is padded with
            zero-occupancy layers whose labels are NaN.
        rough_top: top-layer occupancy ~ U(0.3, 1) instead of 1.
        delta_c, delta_z: half-widths of the uniform distributions of c (Å) and fractional z.
    """

    name: str
    description: str
    n_sub: int
    film_layers: tuple[int, int]
    rough_top: bool = False
    grid: Grid = field(default_factory=paper_grid)
    delta_c: float = 0.1
    delta_z: float = 0.05
    occupancy_range: tuple[float, float] = (0.3, 1.0)

    def __post_init__(self) -> None:
        lo, hi = self.film_layers
        if self.n_sub < 1 or lo < 1 or hi < lo:
            raise ValueError(f"need n_sub ≥ 1 and 1 ≤ min ≤ max film layers, got {self.n_sub}, {self.film_layers}")

    # ----------------------------------------------------------------- layout
    @property
    def n_layers(self) -> int:
        """J: explicit layers including the nominal layer 0."""
        return 1 + self.n_sub + self.film_layers[1]

    @property
    def mixing_layers(self) -> tuple[int, ...]:
        """Layers whose A site mixes Sr and La (p1..p4): two either side of the interface."""
        return tuple(range(self.n_sub - 1, self.n_sub + 3))

    @property
    def model(self) -> StructureModel:
        return _model_cache(self.n_sub, self.film_layers[1])

    def _a_species(self) -> list[tuple[str, ...]]:
        mixing = self.mixing_layers
        return [("Sr", "La") if j in mixing else ("Sr",) if j <= self.n_sub else ("La",)
                for j in range(self.n_layers)]

    def _c_center(self) -> np.ndarray:
        return np.where(np.arange(self.n_layers) <= self.n_sub, SRTIO3_A, LAO_C)

    # --------------------------------------------------------------- sampling
    def sample(self, n: int, seed: int = 0, start: int = 0) -> Structures:
        """Structures start .. start+n−1 of `seed` (each depends only on seed and its index)."""
        n, seed, start = check_count("n", n, minimum=0), check_count("seed", seed), check_count("start", start)
        if n == 0:
            return self._structures(_empty_draw(self.n_layers))
        first, last = start // BLOCK, (start + n - 1) // BLOCK
        draws = [self._draw_block(seed, block) for block in range(first, last + 1)]
        merged = {key: np.concatenate([d[key] for d in draws]) for key in draws[0]}
        offset = start - first * BLOCK
        return self._structures({key: value[offset: offset + n] for key, value in merged.items()})

    def _draw_block(self, seed: int, block: int) -> dict[str, np.ndarray]:
        """Uniform draws of one block, always in the same order and shape (whatever the preset uses)."""
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(block,))))
        J = self.n_layers
        draw = {
            "c": rng.uniform(-1.0, 1.0, (BLOCK, J)),
            "z_B": rng.uniform(-1.0, 1.0, (BLOCK, J)),
            "z_Oap": rng.uniform(-1.0, 1.0, (BLOCK, J)),
            "z_Oeq": rng.uniform(-1.0, 1.0, (BLOCK, J)),
            "p": _interface_mixing(rng, seed, block),
            "occupancy": rng.uniform(*self.occupancy_range, BLOCK),
            "film": rng.integers(self.film_layers[0], self.film_layers[1] + 1, BLOCK),
        }
        return draw

    def _structures(self, draw: dict[str, np.ndarray]) -> Structures:
        n, J = draw["c"].shape
        variable = np.arange(J) >= 1
        c = np.where(variable, self._c_center() + self.delta_c * draw["c"], SRTIO3_A)
        z = {name: np.where(variable, NOMINAL_Z[name] + self.delta_z * draw[key], NOMINAL_Z[name])
             for name, key in (("B", "z_B"), ("O_ap", "z_Oap"), ("O_x", "z_Oeq"), ("O_y", "z_Oeq"))}
        sr = np.where(np.arange(J) <= self.n_sub, 1.0, 0.0) * np.ones((n, 1))
        sr[:, list(self.mixing_layers)] = draw["p"]
        top = self.n_sub + draw["film"]  # (n,) index of the top layer
        layer = np.arange(J)[None, :]
        occupancy = (layer <= top[:, None]).astype(np.float64)
        padded = layer > top[:, None]
        c = np.where(padded, LAO_C, c)
        for name in z:
            z[name] = np.where(padded, NOMINAL_Z[name], z[name])
        if self.rough_top:
            occupancy[np.arange(n), top] = draw["occupancy"]
        return perovskite_structures(self.model, c, z["B"], z["O_ap"], z["O_x"], z["O_y"], sr, occupancy)

    def nominal(self) -> Structures:
        """The nominal structure: nominal c and z, abrupt interface (p = 1, 1, 0, 0), middle thickness."""
        J = self.n_layers
        draw = _empty_draw(J, 1)
        draw["p"][:] = [1.0, 1.0, 0.0, 0.0]
        draw["occupancy"][:] = 0.5 * sum(self.occupancy_range)
        draw["film"][:] = (self.film_layers[0] + self.film_layers[1]) // 2
        return self._structures(draw)

    def from_parameters(self, c, z_B, z_Oap, z_Ox, z_Oy, sr_fraction, occupancy, beta=None) -> Structures:
        """Structures of this preset's model from per-layer arrays (n, J) or (J,)."""
        return perovskite_structures(self.model, c, z_B, z_Oap, z_Ox, z_Oy, sr_fraction, occupancy, beta)

    def parameters(self, structures: Structures) -> dict[str, np.ndarray]:
        """Named per-layer parameters (n, J) plus n_film (n,)."""
        self._check_model(structures)
        params = perovskite_parameters(structures)
        params["n_film"] = (structures.occupancy[:, self.n_sub + 1:] > 0).sum(axis=1).astype(np.float64)
        return params

    # ----------------------------------------------------------------- labels
    def label_specs(self) -> list[LabelSpec]:
        """The labels of physics.md in a fixed order."""
        J, dc, dz = self.n_layers, self.delta_c, self.delta_z
        c_mid = self._c_center()
        specs = [LabelSpec(f"c_{j}", "c", c_mid[j] - dc, c_mid[j] + dc, c_mid[j]) for j in range(1, J - 1)]
        specs.append(LabelSpec("c_top", "c", LAO_C - dc, LAO_C + dc, LAO_C, identifiable=False))
        for atom, z0 in (("B", 0.5), ("O_ap", 0.0), ("O_eq", 0.5)):
            for j in range(1, J):
                below_c = (SRTIO3_A, SRTIO3_A) if j == 1 else (c_mid[j - 1] - dc, c_mid[j - 1] + dc)
                below_z = (z0, z0) if j == 1 else (z0 - dz, z0 + dz)
                low, high = _interval_sum(_interval_product(below_c, (1 - below_z[1], 1 - below_z[0])),
                                          _interval_product((c_mid[j] - dc, c_mid[j] + dc), (z0 - dz, z0 + dz)))
                nominal = (SRTIO3_A if j == 1 else c_mid[j - 1]) * (1 - z0) + c_mid[j] * z0
                specs.append(LabelSpec(f"d_{atom}_{j}", atom, low, high, nominal))
        specs += [LabelSpec(f"p_{i}", "p", 0.0, 1.0, 0.5, unit="") for i in range(1, 5)]
        if self.rough_top:
            lo, hi = self.occupancy_range
            specs.append(LabelSpec("occ_top", "occupancy", lo, hi, 0.5 * (lo + hi), unit=""))
        return specs

    def labels(self, structures: Structures) -> dict[str, np.ndarray]:
        """Label name → (n,) float64; NaN where a layer is absent (or c_j is the top layer)."""
        self._check_model(structures)
        n, J = structures.c.shape
        rows = np.arange(n)
        present = structures.occupancy > 0
        top = J - 1 - np.argmax(present[:, ::-1], axis=1)
        out: dict[str, np.ndarray] = {}
        for j in range(1, J - 1):
            out[f"c_{j}"] = np.where(present[:, j] & (top != j), structures.c[:, j], np.nan)
        out["c_top"] = structures.c[rows, top]
        heights = structures.heights
        below = {"B": SRTIO3_A * 0.5 - SRTIO3_A, "O_ap": -SRTIO3_A, "O_eq": SRTIO3_A * 0.5 - SRTIO3_A}
        for atom, site in (("B", 1), ("O_ap", 2), ("O_eq", 3)):
            previous = np.full(n, below[atom])  # the same atom in the nominal substrate cell below layer 0
            for j in range(J):
                current = heights[:, j, site]
                if j >= 1:
                    out[f"d_{atom}_{j}"] = np.where(present[:, j], current - previous, np.nan)
                previous = current
        params = perovskite_parameters(structures)
        for i, j in enumerate(self.mixing_layers, start=1):
            out[f"p_{i}"] = params["sr_fraction"][:, j].copy()
        if self.rough_top:
            out["occ_top"] = structures.occupancy[rows, top]
        return {spec.name: out[spec.name] for spec in self.label_specs()}

    def _check_model(self, structures: Structures) -> None:
        if structures.model is not self.model:
            raise ValueError(f"these structures were not made by preset {self.name!r} (different model)")

    def to_dict(self) -> dict:
        """JSON-able description (stored in every output file)."""
        return {
            "name": self.name, "family": "perovskite-SrTiO3-LaAlO3", "n_sub": self.n_sub,
            "film_layers": list(self.film_layers), "rough_top": self.rough_top,
            "delta_c": self.delta_c, "delta_z": self.delta_z, "occupancy_range": list(self.occupancy_range),
            "grid": self.grid.to_dict(),
        }


def from_dict(values: dict) -> PerovskitePreset:
    """The preset described by `PerovskitePreset.to_dict()` (as stored in datasets and checkpoints): the built-in
    preset of that name when it matches, else one rebuilt from the stored fields."""
    try:
        name = values["name"]
        if name in _PRESETS:
            built_in = get(name)
            if _same_description(built_in.to_dict(), values):
                return built_in
        return PerovskitePreset(
            name=name, description=str(values.get("description", name)), n_sub=int(values["n_sub"]),
            film_layers=(int(values["film_layers"][0]), int(values["film_layers"][1])),
            rough_top=bool(values["rough_top"]),
            grid=Grid(**values["grid"]), delta_c=float(values["delta_c"]), delta_z=float(values["delta_z"]),
            occupancy_range=tuple(float(v) for v in values["occupancy_range"]))  # type: ignore[arg-type]
    except (KeyError, TypeError) as error:
        raise ValueError(f"not a perovskite preset description ({error!r}): {values!r:.200}") from None


def _same_description(a: dict, b: dict) -> bool:
    import json

    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


_MODELS: dict[tuple[int, int], StructureModel] = {}


def _model_cache(n_sub: int, max_film: int) -> StructureModel:
    """One StructureModel object per layout, so structures can be checked by identity."""
    key = (n_sub, max_film)
    if key not in _MODELS:
        J = 1 + n_sub + max_film
        mixing = range(n_sub - 1, n_sub + 3)
        a = [("Sr", "La") if j in mixing else ("Sr",) if j <= n_sub else ("La",) for j in range(J)]
        b = ["Ti" if j <= n_sub else "Al" for j in range(J)]
        _MODELS[key] = perovskite_model(a, b)
    return _MODELS[key]


def _interface_mixing(rng: np.random.Generator, seed: int, block: int) -> np.ndarray:
    """(BLOCK, 4) p1..p4: four Beta(0.75, 0.75) rescaled to sum 2, redrawn while any exceeds 1."""
    candidates = rng.beta(0.75, 0.75, (BLOCK, _BETA_TRIES, 4))
    candidates *= 2.0 / candidates.sum(axis=-1, keepdims=True)
    valid = np.all(candidates <= 1.0, axis=-1)
    first = np.argmax(valid, axis=1)
    p = candidates[np.arange(BLOCK), first]
    for row in np.flatnonzero(~valid.any(axis=1)):  # practically never; still keyed by index
        extra = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(block, int(row), 1))))
        while True:
            x = extra.beta(0.75, 0.75, 4)
            x *= 2.0 / x.sum()
            if np.all(x <= 1.0):
                p[row] = x
                break
    return p


def _empty_draw(J: int, n: int = 0) -> dict[str, np.ndarray]:
    return {"c": np.zeros((n, J)), "z_B": np.zeros((n, J)), "z_Oap": np.zeros((n, J)),
            "z_Oeq": np.zeros((n, J)), "p": np.full((n, 4), 0.5), "occupancy": np.ones(n),
            "film": np.zeros(n, dtype=np.int64)}


def _interval_product(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    corners = [x * y for x in a for y in b]
    return min(corners), max(corners)


def _interval_sum(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    return a[0] + b[0], a[1] + b[1]


# ----------------------------------------------------------------- registry
_PRESETS: dict[str, Callable[[], PerovskitePreset]] = {}
_ALIASES: dict[str, str] = {}
_INSTANCES: dict[str, PerovskitePreset] = {}


def register(name: str, factory: Callable[[], PerovskitePreset], aliases: tuple[str, ...] = ()) -> None:
    """Add a preset under `name` (and short aliases)."""
    if name in _PRESETS or name in _ALIASES:
        raise ValueError(f"preset {name!r} already exists")
    _PRESETS[name] = factory
    for alias in aliases:
        _ALIASES[alias] = name


def names() -> list[str]:
    """Names of the built-in and registered presets."""
    return list(_PRESETS)


def get(name: str) -> PerovskitePreset:
    """The preset called `name` (or one of its aliases, e.g. "12L")."""
    canonical = _ALIASES.get(name, name)
    if canonical not in _PRESETS:
        known = ", ".join(names() + sorted(_ALIASES))
        raise InputError(f"unknown preset {name!r}: known are {known}")
    if canonical not in _INSTANCES:
        _INSTANCES[canonical] = _PRESETS[canonical]()
    return _INSTANCES[canonical]


def _family(name: str, n_sub: int, film: tuple[int, int], rough: bool, text: str) -> Callable[[], PerovskitePreset]:
    return lambda: PerovskitePreset(name, text, n_sub, film, rough)


register("paper-12L", _family("paper-12L", 8, (4, 4), False,
                              "MAMBA paper: 8 SrTiO3 + 4 LaAlO3 layers on SrTiO3, smooth"), ("12L",))
register("paper-12L-rough", _family("paper-12L-rough", 8, (4, 4), True,
                                    "MAMBA paper: 8 SrTiO3 + 4 LaAlO3, top occupancy U(0.3, 1)"))
register("paper-4L", _family("paper-4L", 2, (2, 2), False, "2 SrTiO3 + 2 LaAlO3 layers"), ("4L",))
register("paper-16L", _family("paper-16L", 8, (8, 8), False, "8 SrTiO3 + 8 LaAlO3 layers"), ("16L",))
register("paper-24L", _family("paper-24L", 8, (16, 16), False, "8 SrTiO3 + 16 LaAlO3 layers"), ("24L",))
register("paper-11-13L-rough", _family("paper-11-13L-rough", 8, (3, 5), True,
                                       "8 SrTiO3 + 3–5 LaAlO3 layers, top occupancy U(0.3, 1)"), ("rough",))

_OVERRIDABLE = ("n_sub", "film_layers", "rough_top", "delta_c", "delta_z", "occupancy_range")


def resolve(spec: str | os.PathLike) -> PerovskitePreset:
    """A built-in preset by name, or a user family from a TOML file (`base` + overrides)."""
    text = str(spec)
    if not text.endswith(".toml"):
        return get(text)
    values = read_toml(spec)
    if "base" not in values:
        raise InputError(f"{spec}: a preset file needs base = \"<preset name>\" (e.g. \"paper-12L\")")
    base = get(str(values.pop("base")))
    unknown = sorted(set(values) - {*_OVERRIDABLE, "name", "description"})
    if unknown:
        raise InputError(f"{spec}: unknown keys {unknown}; allowed are base, name, description, "
                         f"{', '.join(_OVERRIDABLE)}")
    for key in ("film_layers", "occupancy_range"):
        if key in values:
            if not isinstance(values[key], list) or len(values[key]) != 2:
                raise InputError(f"{spec}: {key} must be a list of two numbers, got {values[key]!r}")
            values[key] = tuple(values[key])
    values.setdefault("name", f"{base.name}+{Path(spec).stem}")
    values.setdefault("description", f"{base.description} (modified by {Path(spec).name})")
    try:
        return dataclasses.replace(base, **values)
    except TypeError as error:
        raise InputError(f"{spec}: {error}") from None
