"""COBRA, coherent Bragg rod analysis (Yacoby et al., PRL 85, 2000; Nature Materials 1, 99, 2002).

A classical phase-retrieval baseline for the networks: it recovers the film field U(q) from the
intensities I(q) = |S(q) + U(q)|² alone, given the known substrate field S and a nominal film.
(Over 450 lines because 70 describe the method, read against its steps, settings and projections kept here.)

The method, as implemented here (rod by rod; L the rod coordinate, q_z = 2πL/c_ref):

1. Split the total structure factor into a known reference and an unknown remainder,

       T(q) = S_R(q) + S_U(q),    S_R = S + U_ref,

   where U_ref is the current reference film (the preset's nominal film at the start).

2. Slowly varying remainder. Seen from an origin z₀ in the middle of the film, the remainder
   u(L) = S_U(L) e^{−i q_z z₀} changes little between neighbouring points (a film of thickness D turns
   it by up to Δq_z · D/2 per step, so the assumption degrades with thickness); COBRA takes it equal at
   each pair of neighbours L₁, L₂. With a_n = S_R(L_n) e^{−i q_z(L_n) z₀} the two measured amplitudes
   give

       |a₁ + u| = √I₁,    |a₂ + u| = √I₂,

   so u is an intersection of two circles in the complex plane, centres −a₁, −a₂ and radii √I₁, √I₂
   (`intersect_circles`). Of the two roots the one nearer the expected value is kept: 0, the
   reference's own prediction (default), or the previous pair's root along the rod (continuity).
   Circles that do not meet give the point of the line through the centres that minimises
   (|a₁+u| − √I₁)² + (|a₂+u| − √I₂)².

3. Every point belongs to two pairs (one at the end of a segment): u there is the mean of its pairs'
   roots, T = S_R + u e^{i q_z z₀}, and the film field estimate is U_T = T − S. The substrate field
   diverges at the Bragg points (integer L), where nothing is measured: they and their pairs are
   skipped (`cobra_remainder`).

4. Real space. The density of the film is zero outside its support z ∈ [z_min − m, z_max + m]
   (z_min, z_max the nominal film's atom heights, m = `support_margin`). Two projections of U_T on
   this constraint are available (`CobraConfig.projection`):

   * "mask" (the textbook step): ρ = F⁻¹[U_T] on a 3-D grid, with the rods extended to −h, −k by the
     film's in-plane mirror symmetry and to −L by Friedel's law U(−L) = U(L)*, Bragg points and L = 0
     filled by interpolating U e^{−i q_z z₀} along L (`reconstruct.reciprocal.FilmTransform`); ρ is set to 0 outside the
     support (optionally also outside cylinders of radius `column_radius` around the atom columns, and
     where negative); the forward transform F[Pρ] on the grid is the new reference. The truncation of
     L at ±L_max rings beyond the support, so even the true film is changed by this projection
     (about 2 % mean |ΔU|/|U| on paper-4L, 20 % with positivity, which truncation ripples violate).
   * "fit" (default): per rod, the real z-profile ρ_hk(z) on a grid of step `z_step` inside the
     support whose transform Σ_z ρ_hk(z) e^{i q_z z} is nearest U_T at the measured points (least
     squares, singular values below `rcond` × the largest dropped); the new reference is that
     transform at every point, Bragg points included. It leaves a true film almost unchanged (mean
     |ΔU|/|U| 4e-4 on paper-4L, 9e-4 on paper-12L with the defaults).

5. U_ref ← U_ref + β (projection − U_ref) with mixing β, and back to 1, until the relative change of
   U_ref over the measured points is below `tolerance` or for `max_iterations`.

The history records per iteration the amplitude R-factors

    R = Σ | |F_model| − √I | / Σ √I    (Bragg points excluded)

of the COBRA total T (the pair model reproduces the data almost exactly, so this stays small) and of the
reference S + U_ref (how well the support-constrained film explains the data; the one to watch). The
recovered field is the reference film of the iteration with the lowest reference R (`keep_best`) or
of the last one. `cobra_labels` reads the labels of physics.md from it with `mamba_ctr.reconstruct`.

COBRA needs the intensities on the absolute scale of S (the same electron units), a starting film close
enough that most two-circle roots are right, and a film thin enough that Δq_z · D/2 ≪ 1 rad, i.e.
D ≪ c_ref / (π ΔL) ≈ 50 Å on the paper grid. Measured on noise-free data from the nominal start
(benchmarks/test_cobra.py, 48 structures each): mean |ΔU| / |U| 0.40 → 0.12 on paper-4L (label R² 0.91),
0.59 → 0.39 on paper-12L (R² 0.75), 0.65 → 0.56 on paper-16L (R² 0.49). On the thicker films the
reference R still falls to 1–2 %: a wrong film inside the support fits the data, so a small R does not
prove a correct phase there.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
from tqdm import tqdm

from .._checks import check_count
from ..physics.grid import Grid
from ..physics.lowering import substrate_field
from ..physics.perovskite import PEROVSKITE_COLUMNS
from ..physics.presets import PerovskitePreset
from ..reconstruct.reciprocal import FilmTransform, check_rods
from ..simulate import simulate

_MISSING = complex(np.nan, np.nan)


# ----------------------------------------------------------------------------- two circles
def intersect_circles(
    center1: np.ndarray, radius1: np.ndarray, center2: np.ndarray, radius2: np.ndarray, guess: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The point x of the complex plane with |x − center1| = radius1 and |x − center2| = radius2.

    Elementwise over broadcastable arrays. Of two intersections the one nearer `guess` is returned;
    circles that do not meet give the point on the line through the centres minimising
    (|x − c1| − r1)² + (|x − c2| − r2)²; coincident centres give the point of circle 1 nearest `guess`.

    Returns:
        (x, meet): x complex128, meet bool (True where the circles intersect or touch).
    """
    c1, r1, c2, r2, guess = np.broadcast_arrays(
        np.asarray(center1, np.complex128), np.asarray(radius1, np.float64),
        np.asarray(center2, np.complex128), np.asarray(radius2, np.float64), np.asarray(guess, np.complex128))
    offset = c2 - c1
    d = np.abs(offset)
    coincident = d <= 1e-12 * np.maximum(np.maximum(r1, r2), 1.0)
    d = np.where(coincident, 1.0, d)
    axis = np.where(coincident, 1.0, offset / d)  # unit vector c1 → c2
    along = (d**2 + r1**2 - r2**2) / (2 * d)  # from c1 to the common chord
    half_chord2 = r1**2 - along**2
    meet = (half_chord2 >= 0) & ~coincident
    half_chord = np.sqrt(np.where(meet, half_chord2, 0.0))
    root_a = c1 + axis * (along + 1j * half_chord)
    root_b = c1 + axis * (along - 1j * half_chord)
    x = np.where(np.abs(root_a - guess) <= np.abs(root_b - guess), root_a, root_b)
    # circles apart, circle 2 inside circle 1, circle 1 inside circle 2: least-squares point on the axis
    on_axis = np.where(d > r1 + r2, (d + r1 - r2) / 2, np.where(r1 >= r2, (r1 + d + r2) / 2, (d - r1 - r2) / 2))
    x = np.where(meet, x, c1 + axis * on_axis)
    towards = guess - c1  # coincident centres: only the guess gives a direction
    norm = np.abs(towards)
    direction = np.where(norm > 0, towards / np.where(norm > 0, norm, 1.0), 1.0)
    return np.where(coincident, c1 + r1 * direction, x), meet


# ----------------------------------------------------------------------------- the COBRA step
def cobra_remainder(
    intensity: np.ndarray, reference: np.ndarray, qz: np.ndarray, measured: np.ndarray, origin: float,
    continuity: bool = False,
) -> np.ndarray:
    """S_U (R, NL) complex from the two-circle solutions of neighbouring pairs; NaN where not measured.

    Args:
        intensity: (R, NL) measured I.
        reference: (R, NL) complex S_R = S + U_ref.
        qz: (NL,) Å⁻¹.
        measured: (NL,) bool, False at the points to skip (Bragg points).
        origin: z₀, Å: S_U e^{−i q_z z₀} is taken equal at neighbouring points.
        continuity: keep the root nearest the previous pair's root along the rod, else the root nearest 0.
    """
    shift = np.exp(-1j * qz * origin)[None, :]
    centres = -reference * shift
    radii = np.sqrt(intensity)
    n_rods, n_L = intensity.shape
    pair_ok = measured[:-1] & measured[1:]
    roots = np.full((n_rods, n_L - 1), _MISSING)
    if continuity:
        guess = np.zeros(n_rods, dtype=np.complex128)
        for j in range(n_L - 1):
            if pair_ok[j]:
                guess = roots[:, j] = intersect_circles(centres[:, j], radii[:, j], centres[:, j + 1],
                                                        radii[:, j + 1], guess)[0]
            else:
                guess = np.zeros(n_rods, dtype=np.complex128)  # a new segment: back to the reference
    else:
        pairs = np.flatnonzero(pair_ok)
        roots[:, pairs] = intersect_circles(centres[:, pairs], radii[:, pairs], centres[:, pairs + 1],
                                            radii[:, pairs + 1], np.zeros(1, dtype=np.complex128))[0]
    # each point: the mean of the roots of the pairs it belongs to
    pad = np.full((n_rods, 1), _MISSING)
    both = np.stack([np.concatenate([pad, roots], axis=1), np.concatenate([roots, pad], axis=1)])
    known = np.isfinite(both)
    count = known.sum(axis=0)
    u = np.where(known, both, 0).sum(axis=0) / np.maximum(count, 1)
    u[(count == 0) | ~measured[None, :]] = _MISSING
    return u / shift


def r_factor(model_field: np.ndarray, intensity: np.ndarray, measured: np.ndarray) -> float:
    """Σ | |F| − √I | / Σ √I over the measured points (the (NL,) mask `measured`)."""
    amplitude = np.sqrt(intensity[..., measured])
    return float(np.sum(np.abs(np.abs(model_field[..., measured]) - amplitude)) / np.sum(amplitude))


# ----------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class CobraConfig:
    """Settings of the COBRA iteration (see the module docstring for the steps they belong to).

    Attributes:
        max_iterations: upper bound on iterations (each: pair solve, projection).
        tolerance: stop when ‖U_ref,new − U_ref‖ / ‖U_ref‖ over the measured points is below it.
        support_margin: Å added below and above the nominal film's atom heights.
        projection: "fit" (least-squares supported z-profiles per rod) or "mask" (inverse FT, constraints,
            forward FT).
        z_step: "fit": z spacing of the profiles, Å.
        rcond: "fit": relative singular-value cut of the least-squares fit.
        positivity: "mask": clip negative density to 0.
        column_radius: "mask": Å; keep density only within this in-plane distance of the atom columns
            (0,0), (½,½), (½,0), (0,½); None: no in-plane support.
        xy_points: "mask": in-plane density samples per cell edge (≥ 2·max(h, k) + 2).
        z_oversampling: "mask": zero padding factor of the L axis (finer z sampling of ρ).
        mixing: β of U_ref ← U_ref + β (projection − U_ref), in (0, 1].
        origin: z₀, Å, of the frame where the remainder is taken constant between neighbours;
            None: the middle of the support.
        continuity: root choice: nearest the previous pair's root (True) or nearest 0 (False).
        keep_best: return the reference of the iteration with the lowest reference R (else the last).
    """

    max_iterations: int = 30
    tolerance: float = 1e-3
    support_margin: float = 1.0
    projection: Literal["fit", "mask"] = "fit"
    z_step: float = 0.16
    rcond: float = 1e-2
    positivity: bool = False
    column_radius: float | None = None
    xy_points: int = 16
    z_oversampling: int = 2
    mixing: float = 1.0
    origin: float | None = None
    continuity: bool = False
    keep_best: bool = True

    def __post_init__(self) -> None:
        for name in ("max_iterations", "xy_points", "z_oversampling"):
            check_count(name, getattr(self, name), 1)
        for name in ("tolerance", "support_margin"):
            if not _finite_at_least(getattr(self, name), 0.0):
                raise ValueError(f"{name} must be a finite number ≥ 0, got {getattr(self, name)!r}")
        for name in ("z_step", "rcond"):
            if not (_finite_at_least(getattr(self, name), 0.0) and getattr(self, name) > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {getattr(self, name)!r}")
        if self.projection not in ("fit", "mask"):
            raise ValueError(f"projection must be 'fit' or 'mask', got {self.projection!r}")
        if self.projection == "fit" and (self.positivity or self.column_radius is not None):
            raise ValueError("positivity and column_radius act on the 3-D density: use projection='mask'")
        if not (_finite_at_least(self.mixing, 0.0) and 0 < self.mixing <= 1):
            raise ValueError(f"mixing must lie in (0, 1], got {self.mixing!r}")
        if self.column_radius is not None and not (_finite_at_least(self.column_radius, 0.0)
                                                   and self.column_radius > 0):
            raise ValueError(f"column_radius must be > 0 Å or None, got {self.column_radius!r}")
        if self.origin is not None and not _finite_at_least(self.origin, -np.inf):
            raise ValueError(f"origin must be a finite height in Å or None, got {self.origin!r}")


def _finite_at_least(value, low: float) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and bool(np.isfinite(value)) and bool(value >= low)


# ----------------------------------------------------------------------------- projections
class Projection(Protocol):
    def __call__(self, field: np.ndarray) -> np.ndarray:
        """(R, NL) reference film from an (R, NL) estimate that is NaN at the unmeasured points."""


class MaskProjection:
    """The textbook real-space step: inverse FT, support (and positivity, columns), forward FT."""

    def __init__(self, grid: Grid, z_range: tuple[float, float], config: CobraConfig, origin: float) -> None:
        self.transform = FilmTransform(grid, config.xy_points, config.z_oversampling)
        self.support = support_mask(self.transform, z_range, config.column_radius, grid.a, grid.b)
        self.positivity = config.positivity
        self.origin = origin

    def __call__(self, field: np.ndarray) -> np.ndarray:
        rho = self.transform.density(self.transform.fill(field, self.origin))
        return self.transform.field(constrain(rho, self.support, self.positivity))


class FitProjection:
    """Least-squares real z-profiles ρ_hk(z) inside the support, one per rod, and their transforms."""

    def __init__(self, grid: Grid, z_range: tuple[float, float], z_step: float, rcond: float) -> None:
        z_low, z_high = z_range
        self.z = np.arange(z_low, z_high + 0.5 * z_step, z_step)  # (Nz,) Å
        self.measured = ~grid.bragg
        self.forward = np.exp(1j * grid.qz[:, None] * self.z[None, :])  # (NL, Nz) e^{i q_z z}
        measured = self.forward[self.measured]
        self.solve = np.linalg.pinv(np.concatenate([measured.real, measured.imag]), rcond=rcond)  # (Nz, 2·NLm)

    def profiles(self, field: np.ndarray) -> np.ndarray:
        """(R, Nz) real ρ_hk(z) fitted to `field` at the measured points (arbitrary units per Å step)."""
        values = field[:, self.measured]
        return np.concatenate([values.real, values.imag], axis=1) @ self.solve.T

    def __call__(self, field: np.ndarray) -> np.ndarray:
        return self.profiles(field) @ self.forward.T


def support_mask(transform: FilmTransform, z_range: tuple[float, float], column_radius: float | None,
                 a: float, b: float) -> np.ndarray:
    """(Nxy, Nxy, Nz) bool: True where the film's density may be non-zero (a, b: cell edges, Å)."""
    z_low, z_high = z_range
    along_z = (transform.z >= z_low) & (transform.z <= z_high)
    if column_radius is None:
        in_plane = np.ones((transform.n_xy, transform.n_xy), dtype=bool)
    else:
        x, y = np.meshgrid(transform.xy, transform.xy, indexing="ij")
        in_plane = np.zeros(x.shape, dtype=bool)
        for column in PEROVSKITE_COLUMNS:
            in_plane |= np.hypot(((x - column.x + 0.5) % 1.0 - 0.5) * a,
                                 ((y - column.y + 0.5) % 1.0 - 0.5) * b) <= column_radius
    return in_plane[:, :, None] & along_z[None, None, :]


def constrain(rho: np.ndarray, support: np.ndarray, positivity: bool) -> np.ndarray:
    """The density with zeros outside the support, and negative values clipped to 0 if asked."""
    out = np.where(support, rho, 0.0)
    return np.maximum(out, 0.0) if positivity else out


# ----------------------------------------------------------------------------- problem and results
@dataclass(frozen=True, eq=False)
class CobraProblem:
    """Everything COBRA needs besides the data.

    Attributes:
        grid: where the data are measured.
        substrate: (R, NL) complex S(q).
        nominal_field: (R, NL) complex, the starting reference film.
        atom_range: (z_min, z_max), Å: the lowest and highest atom of the nominal film (support without margin).
    """

    grid: Grid
    substrate: np.ndarray
    nominal_field: np.ndarray
    atom_range: tuple[float, float]

    def __post_init__(self) -> None:
        if not isinstance(self.grid, Grid):
            raise TypeError(f"grid must be a Grid, got {type(self.grid).__name__}")
        check_rods(self.grid, "COBRA")
        for name in ("substrate", "nominal_field"):
            value = np.asarray(getattr(self, name))
            if value.shape != self.grid.shape:
                raise ValueError(f"{name} must have the grid's shape {self.grid.shape}, got {value.shape}")
            if not np.all(np.isfinite(value[:, ~self.grid.bragg])):
                raise ValueError(f"{name} must be finite off the Bragg points")
        low, high = self.atom_range
        if not (np.isfinite(low) and np.isfinite(high) and low <= high):
            raise ValueError(f"atom_range must be finite (z_min, z_max) with z_min ≤ z_max, got {self.atom_range}")

    @classmethod
    def from_preset(cls, preset: PerovskitePreset) -> CobraProblem:
        """The preset's grid, substrate field, nominal film (float64) and its atom height range."""
        if not isinstance(preset, PerovskitePreset):
            raise TypeError(f"preset must be a PerovskitePreset, got {type(preset).__name__}")
        nominal = preset.nominal()
        heights = nominal.heights[0][nominal.occupancy[0] > 0]
        U = simulate(nominal, preset.grid, dtype="float64").film_field
        assert U is not None
        return cls(preset.grid, substrate_field(preset.model, preset.grid), U[0],
                   (float(heights.min()), float(heights.max())))


@dataclass(eq=False)
class CobraResult:
    """What COBRA recovered for one structure.

    Attributes:
        film_field: (R, NL) complex128, the recovered film field U (the kept reference film).
        data_field: (R, NL) complex128, U_T = T − S of the last iteration (NaN at the Bragg points).
        r_factor: (iterations + 1,) R of the total T (entry 0: the starting reference S + U_nominal).
        r_reference: (iterations + 1,) R of S + U_ref (entry 0: the nominal film).
        change: (iterations,) relative change of U_ref per iteration.
        best_iteration: the iteration whose reference is returned (0: the nominal film).
        converged: True if the change fell below the tolerance.
        seconds: wall time, s.
    """

    film_field: np.ndarray
    data_field: np.ndarray
    r_factor: np.ndarray
    r_reference: np.ndarray
    change: np.ndarray
    best_iteration: int
    converged: bool
    seconds: float

    @property
    def iterations(self) -> int:
        return int(self.change.size)


@dataclass(eq=False)
class CobraBatch:
    """COBRA over n structures.

    Attributes:
        film_field: (n, R, NL) complex128 recovered U.
        r_reference: (n,) R of S + U at the returned film; r_start: (n,) R of the nominal film.
        iterations: (n,) int; converged: (n,) bool; seconds: (n,) s per structure.
        results: the per-structure CobraResult (with their histories).
    """

    film_field: np.ndarray
    r_reference: np.ndarray
    r_start: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray
    seconds: np.ndarray
    results: list[CobraResult] = field(repr=False)


# ----------------------------------------------------------------------------- drivers
def cobra(intensity, problem: CobraProblem, config: CobraConfig | None = None, *,
          grid: Grid | None = None) -> CobraResult:
    """Recover the film field of one structure from its intensities by COBRA.

    Args:
        intensity: (R, NL) I = |S + U|² on problem.grid, same scale as S (values at Bragg points ignored).
        problem: grid, substrate field, nominal film and support (e.g. `CobraProblem.from_preset`).
        config: iteration settings (default `CobraConfig()`).
        grid: the grid the intensities were measured on, if known: it must be problem.grid's.
    """
    config = _checked_config(config)
    intensity = _checked_intensity(intensity, problem, batch=False, grid=grid)
    return _retrieve(intensity, problem, config, _projection(problem, config))


def cobra_batch(intensities, problem: CobraProblem, config: CobraConfig | None = None, *,
                grid: Grid | None = None, progress: bool | None = None) -> CobraBatch:
    """`cobra` for every structure of an (n, R, NL) batch of intensities, one after the other.

    Args:
        intensities: (n, R, NL) I on problem.grid.
        problem: grid, substrate, nominal film and support.
        config: iteration settings.
        grid: the grid the intensities were measured on, if known: it must be problem.grid's.
        progress: tqdm bar on stderr; None shows it only when stderr is a terminal.
    """
    config = _checked_config(config)
    intensities = _checked_intensity(intensities, problem, batch=True, grid=grid)
    projection = _projection(problem, config)
    bar = tqdm(intensities, desc="COBRA", unit=" structures", file=sys.stderr,
               disable=None if progress is None else not progress)
    results = [_retrieve(I, problem, config, projection) for I in bar]
    grid = problem.grid
    return CobraBatch(
        film_field=np.stack([r.film_field for r in results]) if results else np.zeros((0, *grid.shape), complex),
        r_reference=np.array([r.r_reference[r.best_iteration] for r in results]),
        r_start=np.array([r.r_reference[0] for r in results]),
        iterations=np.array([r.iterations for r in results], dtype=np.int64),
        converged=np.array([r.converged for r in results], dtype=bool),
        seconds=np.array([r.seconds for r in results]),
        results=results,
    )


def cobra_labels(intensities, preset: PerovskitePreset, config: CobraConfig | None = None, *,
                 progress: bool | None = None) -> tuple[CobraBatch, dict[str, np.ndarray]]:
    """COBRA on intensities simulated or measured on `preset.grid`, then the labels of its recovered fields.

    Args:
        intensities: (n, R, NL) I on preset.grid.
        preset: the structure family: substrate, nominal film, support and labels.
        config: iteration settings.
        progress: tqdm bar on stderr; None shows it only when stderr is a terminal.

    Returns:
        (the CobraBatch, label name → (n,) values from `mamba_ctr.reconstruct.extract_labels`).
    """
    from ..reconstruct.extract import extract_labels  # downstream of the fields: imported on use

    batch = cobra_batch(intensities, CobraProblem.from_preset(preset), config, progress=progress)
    return batch, extract_labels(batch.film_field, preset.grid, preset)


def _origin(problem: CobraProblem, config: CobraConfig) -> float:
    return 0.5 * sum(problem.atom_range) if config.origin is None else float(config.origin)


def _projection(problem: CobraProblem, config: CobraConfig) -> Projection:
    low, high = problem.atom_range
    z_range = (low - config.support_margin, high + config.support_margin)
    if config.projection == "mask":
        return MaskProjection(problem.grid, z_range, config, _origin(problem, config))
    return FitProjection(problem.grid, z_range, config.z_step, config.rcond)


def _retrieve(intensity: np.ndarray, problem: CobraProblem, config: CobraConfig,
              projection: Projection) -> CobraResult:
    start = time.perf_counter()
    grid, S = problem.grid, problem.substrate
    measured = ~grid.bragg
    origin = _origin(problem, config)
    U_ref = np.array(problem.nominal_field, dtype=np.complex128)
    best, best_iteration = U_ref, 0
    r_total = [r_factor(S + U_ref, intensity, measured)]
    r_ref = [r_total[0]]
    changes: list[float] = []
    U_T = np.full(grid.shape, _MISSING)
    for iteration in range(1, config.max_iterations + 1):
        S_R = S + U_ref
        T = S_R + cobra_remainder(intensity, S_R, grid.qz, measured, origin, config.continuity)
        r_total.append(r_factor(T, intensity, measured))
        U_T = T - S
        U_new = U_ref + config.mixing * (projection(U_T) - U_ref)
        changes.append(float(np.linalg.norm((U_new - U_ref)[:, measured]) / np.linalg.norm(U_ref[:, measured])))
        U_ref = U_new
        r_ref.append(r_factor(S + U_ref, intensity, measured))
        if r_ref[-1] < r_ref[best_iteration] or not config.keep_best:
            best, best_iteration = U_ref, iteration
        if changes[-1] < config.tolerance:
            break
    return CobraResult(
        film_field=best, data_field=U_T, r_factor=np.asarray(r_total), r_reference=np.asarray(r_ref),
        change=np.asarray(changes), best_iteration=best_iteration,
        converged=bool(changes and changes[-1] < config.tolerance), seconds=time.perf_counter() - start,
    )


def _checked_config(config: CobraConfig | None) -> CobraConfig:
    if config is None:
        return CobraConfig()
    if not isinstance(config, CobraConfig):
        raise TypeError(f"config must be a CobraConfig, got {type(config).__name__}")
    return config


def _checked_intensity(intensity, problem: CobraProblem, batch: bool, grid: Grid | None) -> np.ndarray:
    if not isinstance(problem, CobraProblem):
        raise TypeError(f"problem must be a CobraProblem, got {type(problem).__name__}")
    if grid is not None:
        if not isinstance(grid, Grid):
            raise TypeError(f"grid must be a Grid or None, got {type(grid).__name__}")
        if not grid.same_as(problem.grid):
            raise ValueError(f"the intensities' grid {grid!r} is not the problem's grid {problem.grid!r}")
    try:
        array = np.asarray(intensity, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"intensity must be an array of numbers: {error}") from None
    grid = problem.grid
    expected = ("n", *grid.shape) if batch else grid.shape
    if array.ndim != len(expected) or array.shape[-2:] != grid.shape:
        raise ValueError(f"intensity must have shape {tuple(expected)} ((R, NL) of the problem's grid), "
                         f"got {array.shape}")
    measured = array[..., ~grid.bragg]
    if not np.all(np.isfinite(measured)):
        raise ValueError(f"intensity must be finite off the Bragg points, got "
                         f"{np.count_nonzero(~np.isfinite(measured))} NaN/inf values")
    if np.any(measured < 0):
        raise ValueError(f"intensity must be ≥ 0, got a minimum of {measured.min():g}")
    return array
