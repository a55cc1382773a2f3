"""Atom heights and the labels of physics.md, read from the column densities of the film field.

The walk (per structure, vectorised over the batch): layer 0's A atom is near z = 0; each next A peak is looked
for one nominal layer height above the previous one, so drifts of ±0.1 Å per layer never lose the stack. Within
layer j (A at Z_j, height c_j = Z_{j+1} − Z_j): O_ap is the peak of the B+O_ap column near Z_j, B near
Z_j + c_j/2 on the same column, O_x and O_y near Z_j + c_j/2 on theirs. Peak positions are refined below the
sampling step by the parabola through the highest sample and its two neighbours.

The A-peak weight (area within ± `weight_half_width`, or height) is linear in the Sr fraction p of the site, so
p = (W − W_La) / (W_Sr − W_La), with W_Sr and W_La the weights the same transform gives for the nominal
structure with pure Sr and pure La on the mixing layers (simulated, not fitted). The occupancy of a rough top
layer is its A weight over that of a full nominal top layer. For a preset of variable thickness, a layer above
the thinnest film counts as present while its A weight exceeds `presence` times that of a full La layer there.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Literal

import numpy as np

from ..physics.grid import Grid
from ..physics.perovskite import NOMINAL_Z
from ..physics.presets import PerovskitePreset
from ..simulate import simulate
from .density import ColumnDensity, DensitySettings, check_film_field, column_density, z_axis

ATOMS = ("A", "B", "O_ap", "O_x", "O_y")
"""The atoms whose heights are extracted, in the order of `Positions.heights`' last axis."""


@dataclass(frozen=True)
class ExtractionSettings:
    """How peaks are found and weighed.

    Attributes:
        density: the transform (its z range is set by the extraction to cover the preset's film, and so is its
            vacuum interval if l0 = "vacuum" and none is given: from 6 Å above the thickest film's top A atom
            to 3 Å below z = 0 one period up).
        a_search: half-width, Å, of the window around the predicted A height.
        atom_search: half-width, Å, of the windows around the predicted B, O_ap, O_x, O_y heights.
        weight: "area" (integral of the A peak within ± weight_half_width) or "height" (peak value).
        weight_half_width: Å, the integration half-width of "area".
        presence: a layer above the thinnest film of a variable-thickness preset is present while its A weight
            exceeds this fraction of a full nominal La layer's (top occupancies go down to 0.3).
    """

    density: DensitySettings = field(default_factory=lambda: DensitySettings(l0="vacuum"))
    a_search: float = 1.0
    atom_search: float = 0.6
    weight: Literal["area", "height"] = "area"
    weight_half_width: float = 0.8
    presence: float = 0.15

    def __post_init__(self) -> None:
        if not isinstance(self.density, DensitySettings):
            raise TypeError(f"density must be DensitySettings, got {type(self.density).__name__}")
        for name in ("a_search", "atom_search", "weight_half_width"):
            value = getattr(self, name)
            if not (np.isfinite(value) and 0 < value < 1.9):
                raise ValueError(f"{name} must be a half-width in Å between 0 and 1.9, got {value!r}")
        if self.weight not in ("area", "height"):
            raise ValueError(f"weight must be 'area' or 'height', got {self.weight!r}")
        if not (np.isfinite(self.presence) and 0 < self.presence < 1):
            raise ValueError(f"presence must lie in (0, 1), got {self.presence!r}")


@dataclass(frozen=True, eq=False)
class Positions:
    """Atom heights read from the density.

    Attributes:
        heights: (n, J, 5) Å, for A, B, O_ap, O_x, O_y (`ATOMS`) of each layer; NaN above the top layer.
        a_weight: (n, J) weight of each A peak (area in e, or height), NaN above the top layer.
        top: (n,) index of the top layer found.
    """

    heights: np.ndarray
    a_weight: np.ndarray
    top: np.ndarray

    def atom(self, name: str) -> np.ndarray:
        """(n, J) heights of one atom, Å."""
        if name not in ATOMS:
            raise ValueError(f"atom must be one of {', '.join(ATOMS)}, got {name!r}")
        return self.heights[:, :, ATOMS.index(name)]


# ---------------------------------------------------------------- peaks
def _find_peaks(rho: np.ndarray, z0: float, dz: float, predicted: np.ndarray, half_width: float,
                ) -> tuple[np.ndarray, np.ndarray]:
    """Highest sample of each row of `rho` (n, nz) within ± half_width of `predicted` (n,), refined.

    Returns (position Å, value at the refined position). The parabola through the highest sample and its
    neighbours gives the sub-sample offset (clipped to ± half a step).
    """
    n, nz = rho.shape
    width = int(np.ceil(half_width / dz))
    centre = np.round((predicted - z0) / dz).astype(np.int64)
    index = np.clip(centre[:, None] + np.arange(-width, width + 1)[None, :], 1, nz - 2)
    rows = np.arange(n)
    best = index[rows, np.argmax(np.take_along_axis(rho, index, axis=1), axis=1)]
    left, middle, right = rho[rows, best - 1], rho[rows, best], rho[rows, best + 1]
    curvature = left - 2 * middle + right
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.where(curvature < 0, 0.5 * (left - right) / curvature, 0.0)
    offset = np.clip(offset, -0.5, 0.5)
    return z0 + (best + offset) * dz, middle - 0.25 * (left - right) * offset


def _areas(rho: np.ndarray, z0: float, dz: float, centre: np.ndarray, half_width: float) -> np.ndarray:
    """∫ rho dz over [centre − half_width, centre + half_width] per row of rho (n, nz), centre (n,).

    The trapezoid rule's running integral, interpolated linearly at both ends (so the result does not jump
    when a window edge crosses a sample).
    """
    n, nz = rho.shape
    running = np.zeros((n, nz))
    np.cumsum(0.5 * dz * (rho[:, 1:] + rho[:, :-1]), axis=1, out=running[:, 1:])
    rows = np.arange(n)

    def running_at(z: np.ndarray) -> np.ndarray:
        t = np.clip((z - z0) / dz, 0, nz - 1.000001)
        i = np.floor(t).astype(np.int64)
        return running[rows, i] + (t - i) * (running[rows, i + 1] - running[rows, i])

    return running_at(centre + half_width) - running_at(centre - half_width)


# ----------------------------------------------------------------- walk
def _nominal_c(preset: PerovskitePreset) -> np.ndarray:
    """(J,) nominal layer heights, Å (SrTiO3 up to the interface, LaAlO3 above)."""
    return preset.parameters(preset.nominal())["c"][0]


def _density_for(U: np.ndarray, grid: Grid, preset: PerovskitePreset, settings: ExtractionSettings) -> ColumnDensity:
    """Column densities over the z range of the preset's thickest film (plus the search margins)."""
    top = float(np.sum(_nominal_c(preset)[:-1])) + preset.n_layers * preset.delta_c
    margin = 2 * settings.a_search + 2.0
    density_settings = replace(settings.density, z_min=min(settings.density.z_min, -margin), z_max=top + 4 + margin)
    if density_settings.l0 == "vacuum" and density_settings.vacuum is None:
        period = grid.c_ref / grid.uniform_L_step
        density_settings = replace(density_settings, vacuum=(top + 6.0, period - 3.0))
    try:
        z_axis(grid, density_settings)
    except ValueError as error:
        raise ValueError(f"preset {preset.name!r} is too thick for this grid's z period: {error}") from None
    return column_density(U, grid, density_settings, scatterers=preset.model.scatterers)


def _a_weights(density: ColumnDensity, positions: np.ndarray, values: np.ndarray,
               settings: ExtractionSettings) -> np.ndarray:
    if settings.weight == "height":
        return values
    return _areas(density.rho[:, 0], float(density.z[0]), density.dz, positions, settings.weight_half_width)


def _walk(density: ColumnDensity, preset: PerovskitePreset, settings: ExtractionSettings,
          presence_reference: np.ndarray | None) -> Positions:
    """Follow the A peaks up the stack, then read the small atoms of every layer found."""
    rho, z0, dz = density.rho, float(density.z[0]), density.dz
    n, J = rho.shape[0], preset.n_layers
    nominal_c = _nominal_c(preset)
    a_height, a_weight = np.full((n, J), np.nan), np.full((n, J), np.nan)
    present = np.ones(n, dtype=bool)
    surely_present = preset.n_sub + preset.film_layers[0]  # layers up to here exist in every structure
    predicted = np.zeros(n)
    for j in range(J):
        position, value = _find_peaks(rho[:, 0], z0, dz, predicted, settings.a_search)
        weight = _a_weights(density, position, value, settings)
        if j > surely_present and presence_reference is not None:
            present &= weight > settings.presence * presence_reference[j]
        a_height[:, j] = np.where(present, position, np.nan)
        a_weight[:, j] = np.where(present, weight, np.nan)
        predicted = position + nominal_c[j]
    top = np.sum(np.isfinite(a_height), axis=1) - 1

    heights = np.full((n, J, len(ATOMS)), np.nan)
    heights[:, :, 0] = a_height
    c = np.diff(a_height, axis=1)  # (n, J−1); NaN at and above the top
    for j in range(J):
        base = np.nan_to_num(a_height[:, j])
        c_j = c[:, j] if j < J - 1 else np.full(n, np.nan)
        c_j = np.where(np.isfinite(c_j), c_j, nominal_c[j])  # the top layer: its nominal height
        middle = base + 0.5 * c_j
        found = {
            "B": _find_peaks(rho[:, 1], z0, dz, middle, settings.atom_search)[0],
            "O_ap": _find_peaks(rho[:, 1], z0, dz, base, settings.atom_search)[0],
            "O_x": _find_peaks(rho[:, 2], z0, dz, middle, settings.atom_search)[0],
            "O_y": _find_peaks(rho[:, 3], z0, dz, middle, settings.atom_search)[0],
        }
        for name, value in found.items():
            heights[:, j, ATOMS.index(name)] = np.where(j <= top, value, np.nan)
    return Positions(heights=heights, a_weight=a_weight, top=top)


# ----------------------------------------------------------- references
def _nominal_variant(preset: PerovskitePreset, n_film: int, sr: float):
    """The nominal structure with `n_film` full film layers and Sr fraction `sr` on every mixing layer."""
    params = preset.parameters(preset.nominal())
    occupancy = (np.arange(preset.n_layers) <= preset.n_sub + n_film).astype(np.float64)[None]
    fraction = params["sr_fraction"].copy()
    fraction[:, list(preset.mixing_layers)] = sr
    return preset.from_parameters(params["c"], params["z_B"], params["z_Oap"], params["z_Ox"], params["z_Oy"],
                                  fraction, occupancy)


@dataclass(frozen=True, eq=False)
class References:
    """A-peak weights of nominal structures through the same transform, per film thickness.

    Attributes:
        film: (T,) film thicknesses (LaAlO3 layers) of the preset.
        sr, la: (T, J) A weights with pure Sr / pure La on the mixing layers.
    """

    film: np.ndarray
    sr: np.ndarray
    la: np.ndarray

    def for_structures(self, top: np.ndarray, n_sub: int) -> tuple[np.ndarray, np.ndarray]:
        """(n, J) Sr and La reference weights for structures whose top layer is `top` (n,)."""
        row = np.clip(top - n_sub - self.film[0], 0, self.film.size - 1)
        return self.sr[row], self.la[row]


def a_site_references(grid: Grid, preset: PerovskitePreset, settings: ExtractionSettings | None = None) -> References:
    """Simulate the nominal structure with pure Sr and pure La mixing layers, for every film thickness.

    The weights are read by the same transform and walk as the data, so they carry the same systematic
    effects (window, L = 0 extrapolation, integration window).
    """
    return _references(grid, preset, settings or ExtractionSettings())


@lru_cache(maxsize=16)
def _references(grid: Grid, preset: PerovskitePreset, settings: ExtractionSettings) -> References:
    films = np.arange(preset.film_layers[0], preset.film_layers[1] + 1)
    weights: dict[float, np.ndarray] = {}
    for sr in (1.0, 0.0):
        rows = []
        for n_film in films:
            structure = _nominal_variant(preset, int(n_film), sr)
            U = simulate(structure, grid, dtype="float64").film_field
            assert U is not None  # simulate returns the film field unless told not to
            density = _density_for(U, grid, preset, settings)
            positions = _walk(density, preset, settings, presence_reference=None)
            rows.append(np.where(np.arange(preset.n_layers) <= preset.n_sub + n_film, positions.a_weight[0], np.nan))
        weights[sr] = np.array(rows)
    return References(film=films, sr=weights[1.0], la=weights[0.0])


# -------------------------------------------------------------- labels
def _check_inputs(U, grid: Grid, preset: PerovskitePreset, settings: ExtractionSettings | None,
                  ) -> tuple[np.ndarray, ExtractionSettings]:
    if not isinstance(preset, PerovskitePreset):
        raise TypeError(f"preset must be a PerovskitePreset, got {type(preset).__name__}")
    settings = settings or ExtractionSettings()
    if not isinstance(settings, ExtractionSettings):
        raise TypeError(f"settings must be ExtractionSettings, got {type(settings).__name__}")
    return check_film_field(U, grid), settings


def extract_positions(U, grid: Grid, preset: PerovskitePreset,
                      settings: ExtractionSettings | None = None) -> Positions:
    """Atom heights (Å from layer 0's A atom) and A-peak weights of n film fields of `preset`.

    Args:
        U: (n, R, NL) or (R, NL) complex film fields on `grid`.
        grid: the grid of U (h, k ≥ 0, L_i = i ΔL).
        preset: the structure family (number of layers, nominal heights, species).
        settings: peak search and density settings.
    """
    U, settings = _check_inputs(U, grid, preset, settings)
    references = _references(grid, preset, settings)
    variable = preset.film_layers[0] != preset.film_layers[1]
    presence = np.nanmax(references.la, axis=0) if variable else None
    return _walk(_density_for(U, grid, preset, settings), preset, settings, presence)


def labels_from_positions(positions: Positions, preset: PerovskitePreset, references: References,
                          ) -> dict[str, np.ndarray]:
    """The labels of `preset.label_specs()` (same keys and order as `preset.labels`) from extracted heights."""
    n, J = positions.a_weight.shape
    rows = np.arange(n)
    top = positions.top
    a = positions.atom("A")
    out: dict[str, np.ndarray] = {}
    c = np.diff(a, axis=1)
    for j in range(1, J - 1):
        out[f"c_{j}"] = c[:, j]
    out["c_top"] = _top_layer_height(positions, preset)
    for label, atom in (("B", "B"), ("O_ap", "O_ap"), ("O_eq", "O_x")):
        d = np.diff(positions.atom(atom), axis=1)
        for j in range(1, J):
            out[f"d_{label}_{j}"] = d[:, j - 1]
    w_sr, w_la = references.for_structures(top, preset.n_sub)
    for i, j in enumerate(preset.mixing_layers, start=1):
        out[f"p_{i}"] = (positions.a_weight[:, j] - w_la[:, j]) / (w_sr[:, j] - w_la[:, j])
    if preset.rough_top:
        full_top = np.where(np.isin(top, preset.mixing_layers), np.nan, w_la[rows, top])
        out["occ_top"] = positions.a_weight[rows, top] / full_top
    return {spec.name: out[spec.name] for spec in preset.label_specs()}


def _top_layer_height(positions: Positions, preset: PerovskitePreset) -> np.ndarray:
    """(n,) a guess of the top layer's c, which no data determine (physics.md, "Identifiability").

    Each small atom of the top layer sits at c · z above its A atom with z within the sampled range
    z_nominal ± delta_z, which bounds c; the midpoint of those bounds intersected with the sampled c range.
    """
    n = positions.top.size
    rows, top = np.arange(n), positions.top
    spec = next(s for s in preset.label_specs() if s.name == "c_top")
    low, high = np.full(n, spec.low), np.full(n, spec.high)
    base = positions.atom("A")[rows, top]
    for atom, z0 in (("B", NOMINAL_Z["B"]), ("O_x", NOMINAL_Z["O_x"]), ("O_y", NOMINAL_Z["O_y"])):
        rise = positions.atom(atom)[rows, top] - base
        low = np.maximum(low, rise / (z0 + preset.delta_z))
        high = np.minimum(high, rise / (z0 - preset.delta_z))
    apical = np.abs(positions.atom("O_ap")[rows, top] - base)
    low = np.maximum(low, apical / preset.delta_z)
    return np.where(low <= high, 0.5 * (low + high), spec.nominal)


def extract_labels(U, grid: Grid, preset: PerovskitePreset,
                   settings: ExtractionSettings | None = None) -> dict[str, np.ndarray]:
    """Every label of `preset.label_specs()` read from the density of n film fields.

    Args:
        U: (n, R, NL) or (R, NL) complex film fields on `grid` (true or predicted).
        grid: the grid of U.
        preset: the structure family.
        settings: peak search and density settings (default `ExtractionSettings()`).

    Returns:
        label name → (n,) float64, the same keys in the same order as `preset.labels(structures)`; NaN for the
        layers above the top layer found (zero-occupancy padding).
    """
    U, settings = _check_inputs(U, grid, preset, settings)
    positions = extract_positions(U, grid, preset, settings)
    return labels_from_positions(positions, preset, _references(grid, preset, settings))
