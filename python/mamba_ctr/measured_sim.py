"""Simulate a film on measured points and compare: per-rod grids, β roughness, closed-form scales, R1 and χ².

`MeasuredSimulator(film, rods)` maps every measured rod (H, K) (exact fractions, in the reference in-plane cell
a_ref × b_ref, e.g. pseudocubic SrTiO3) to integer indices of the film's in-plane cell A × B:
(h, k) = (H · A/a_ref, K · B/b_ref). A rod whose indices are not integers cannot be produced by the film (a 2×1 cell
has no (½, ½) rod): it is refused (`on_unproducible="error"`, the default) or left out and listed
(`"skip"`), never filled with zeros. Each rod keeps its own L points (one `Grid` per rod; the compiled kernel
serves each through `mamba_ctr.simulate.simulate`). F is per film cell (a 2×1 cell holds two 1×1 cells: the same
film gives 2× F, 4× I, in it); the fitted scale absorbs that.

β roughness as ROD and GenX define it (Robinson), per rod with its Bragg L_B and spacing dL (from the data, else
L_B = 0 and dL = c_ref / c_substrate = 1 on a substrate-indexed L axis), on the intensity:

    I ← I · (1−β)² / ((1−β)² + 4β sin²(π (L − L_B) / dL))

Scales and agreement (`agreement`): |F|_obs = √max(I_obs, 0), σ_F = σ_I / (2√max(I_obs, σ_I)) (as ROD converts);
the scale s of I_calc (one global, or one per rod) minimises Σ ((√(s I_calc) − |F|_obs) / σ_F)², in closed form
(`baselines.lsq.IntensityResidual`, √ transform). R1 = Σ | |F|_obs − √(s I_calc) | / Σ |F|_obs;
χ²_red = Σ ((√(s I_calc) − |F|_obs) / σ_F)² / (N − number of scales), per rod with N_rod − 1 (or N_rod with one
global scale) degrees of freedom.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .baselines.lsq import IntensityResidual
from .errors import InputError
from .io.measured import MeasuredRods, format_key
from .physics.film_from_atoms import AtomFilm
from .physics.grid import SRTIO3_A, Grid
from .physics.model import Structures
from .simulate import simulate

ON_UNPRODUCIBLE = ("error", "skip")


@dataclass(frozen=True)
class SimulatedRod:
    """One rod the film produces: its key, indices in the film's cell, Bragg L_B and spacing dL, its points."""

    key: tuple[Fraction, Fraction]
    hk: tuple[int, int]
    l_bragg: float
    dl: float
    points: np.ndarray  # (n_rod,) indices into the MeasuredRods arrays, sorted by L
    grid: Grid


class MeasuredSimulator:
    """Intensities of a film at measured points.

    Args:
        film: the film (`physics.film_from_atoms.build_film`).
        rods: the measured points, (H, K) in the reference cell (`a_ref` × `b_ref`, Å).
        reference_cell: (a_ref, b_ref), Å, the in-plane cell the data are indexed in.
        on_unproducible: "error" (InputError naming the rods) or "skip" (leave them out; see `unproducible`).
        backend, threads: as for `mamba_ctr.simulate.simulate`.

    Attributes:
        rods: the produced rods (`SimulatedRod`), in the data's rod order.
        unproducible: the keys of the rods the film's cell cannot produce.
        points: (N,) indices of the simulated points in the MeasuredRods arrays, rod after rod (the order of the
            columns of `intensity`).
    """

    def __init__(self, film: AtomFilm, rods: MeasuredRods, *, reference_cell: tuple[float, float] = (SRTIO3_A,
                 SRTIO3_A), on_unproducible: str = "error", backend: str | None = "auto", threads: int = 0) -> None:
        if on_unproducible not in ON_UNPRODUCIBLE:
            raise InputError(f"on_unproducible must be one of {', '.join(ON_UNPRODUCIBLE)}, got {on_unproducible!r}")
        self.film, self.data, self.backend, self.threads = film, rods, backend, threads
        multiple = (_multiple(film.a, reference_cell[0], "a"), _multiple(film.b, reference_cell[1], "b"))
        produced, missing = [], []
        for rod in rods.rods():
            h, k = rod.key[0] * multiple[0], rod.key[1] * multiple[1]
            if h.denominator != 1 or k.denominator != 1:
                missing.append(rod.key)
                continue
            l_bragg = 0.0 if rod.l_bragg is None or np.isnan(rod.l_bragg) else float(rod.l_bragg)
            dl = film.c_ref / film.model.substrate.c if film.model.substrate is not None else 1.0
            dl = dl if rod.dl is None or np.isnan(rod.dl) else float(rod.dl)
            grid = Grid(h=np.array([int(h)]), k=np.array([int(k)]), L=rod.l, bragg=np.zeros(rod.l.size, dtype=bool),
                        a=film.a, b=film.b, c_ref=film.c_ref)
            produced.append(SimulatedRod(rod.key, (int(h), int(k)), l_bragg, dl, rod.points, grid))
        if missing and on_unproducible == "error":
            raise InputError(f"the film's {film.a:g} × {film.b:g} Å cell cannot produce the rods "
                             f"{', '.join(format_key(key) for key in missing)} (non-integer indices in its cell); "
                             "leave them out (on_unproducible='skip') or use a larger cell")
        if not produced:
            raise InputError("the film's cell produces none of the measured rods")
        self.rods: tuple[SimulatedRod, ...] = tuple(produced)
        self.unproducible: tuple[tuple[Fraction, Fraction], ...] = tuple(missing)
        self.points = np.concatenate([r.points for r in self.rods])
        self.rod_of_point = np.concatenate([np.full(r.points.size, i) for i, r in enumerate(self.rods)])

    @property
    def n_points(self) -> int:
        return int(self.points.size)

    def message(self) -> str:
        """One line on what is simulated and which rods the film cannot produce."""
        text = f"{len(self.rods)} rods, {self.n_points} points simulated"
        if self.unproducible:
            text += (f"; the film's {self.film.a:g} × {self.film.b:g} Å cell cannot produce "
                     f"{', '.join(format_key(key) for key in self.unproducible)} (left out, not fitted with zeros)")
        return text

    def intensity(self, structures: Structures | None = None, beta: float | np.ndarray = 0.0) -> np.ndarray:
        """(n, N) I at `points` for a batch of structures of `film.model` (None: the film's nominal structure).

        β roughness (scalar or (n,)) is applied per rod as in the module docstring; `structures.beta` must be 0.
        """
        structures = self.film.nominal if structures is None else structures
        if np.any(structures.beta != 0):
            raise InputError("give β to MeasuredSimulator.intensity (per-rod Bragg L and spacing), not in Structures")
        n = len(structures)
        beta = np.broadcast_to(np.asarray(beta, dtype=np.float64), (n,))
        if np.any((beta < 0) | (beta >= 1)):
            raise InputError(f"β must lie in [0, 1), got {beta.min()}..{beta.max()}")
        out = np.empty((n, self.n_points))
        start = 0
        for rod in self.rods:
            I = simulate(structures, rod.grid, backend=self.backend, dtype="float64", film_field=False,
                         threads=self.threads).intensity[:, 0, :]
            if np.any(beta):
                I = I * roughness(beta, rod.grid.L, rod.l_bragg, rod.dl)
            out[:, start:start + I.shape[1]] = I
            start += I.shape[1]
        return out

    def observed(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(I_obs (N,), σ_I (N,) or None) at `points`, as intensities."""
        data = self.data.as_quantity("I")
        sigma = None if data.sigma is None else data.sigma[self.points]
        return data.value[self.points], sigma


def roughness(beta: np.ndarray, L: np.ndarray, l_bragg: float, dl: float) -> np.ndarray:
    """(n, NL) Robinson's β factor on I: (1−β)² / ((1−β)² + 4β sin²(π (L − L_B) / dL))."""
    beta = np.asarray(beta, dtype=np.float64).reshape(-1, 1)
    s2 = np.sin(np.pi * (np.asarray(L)[None, :] - l_bragg) / dl) ** 2
    return (1 - beta) ** 2 / ((1 - beta) ** 2 + 4 * beta * s2)


def relative_sigma(I_obs: np.ndarray, fraction: float) -> np.ndarray:
    """The stated error model for data without σ: σ_I = fraction · I_obs, floored at fraction × median(I_obs)."""
    if not fraction > 0:
        raise InputError(f"the relative error must be > 0, got {fraction}")
    magnitude = np.abs(I_obs)
    return fraction * np.maximum(magnitude, max(float(np.median(magnitude)), np.finfo(float).tiny))


@dataclass(frozen=True)
class Agreement:
    """Agreement of calculated and measured intensities at N points on R rods.

    Attributes:
        scale: "global" or "rods"; scales: (R,) the factor s applied to I_calc on each rod.
        r1, chi2_red: overall R1 on |F| and χ²_red; r1_rods, chi2_red_rods, n_rods: (R,) per rod.
        F_obs, F_calc: (N,) |F| measured and √(s I_calc).
    """

    scale: str
    scales: np.ndarray
    r1: float
    chi2_red: float
    r1_rods: np.ndarray
    chi2_red_rods: np.ndarray
    n_rods: np.ndarray
    F_obs: np.ndarray
    F_calc: np.ndarray


def agreement(I_obs: np.ndarray, sigma_I: np.ndarray, I_calc: np.ndarray, rod: np.ndarray, scale: str) -> Agreement:
    """R1 and χ²_red of `I_calc` (N,) against `I_obs` (N,) with σ_I (N,), scales solved in closed form.

    `rod` (N,) numbers the rods 0..R−1; `scale` is "global" (one factor) or "rods" (one per rod).
    """
    if scale not in ("global", "rods"):
        raise InputError(f"scale must be 'global' or 'rods', got {scale!r}")
    rod = np.asarray(rod, dtype=np.int64)
    R = int(rod.max()) + 1
    counts = np.bincount(rod, minlength=R)
    # pad to (R, NL) for IntensityResidual: row r holds rod r's points
    position = np.zeros(rod.size, dtype=np.int64)
    for r in range(R):
        position[rod == r] = np.arange(counts[r])
    shape = (R, int(counts.max()))
    used = np.zeros(shape, dtype=bool)
    used[rod, position] = True

    def padded(values: np.ndarray, fill: float) -> np.ndarray:
        out = np.full(shape, fill)
        out[rod, position] = values
        return out

    F_obs = np.sqrt(np.maximum(I_obs, 0.0))
    sigma_F = sigma_I / (2 * np.sqrt(np.maximum(I_obs, sigma_I)))
    residual = IntensityResidual(padded(I_obs, 1.0), used, "sqrt", scale, padded(1 / sigma_F, 0.0))
    F_fit, scales = residual.fitted(padded(I_calc, 1.0)[None])
    F_calc = F_fit[0][rod, position]
    n_scales = R if scale == "rods" else 1
    r1, chi2_red, r1_rods, chi2_red_rods = f_figures(F_obs, F_calc, sigma_F, rod, R, rod.size - n_scales,
                                                     counts - (1 if scale == "rods" else 0))
    return Agreement(scale=scale, scales=scales[0].copy(), r1=r1, chi2_red=chi2_red, r1_rods=r1_rods,
                     chi2_red_rods=chi2_red_rods, n_rods=counts, F_obs=F_obs, F_calc=F_calc)


def f_figures(F_obs: np.ndarray, F_calc: np.ndarray, sigma_F: np.ndarray, rod: np.ndarray, n_rods: int,
              dof: int, dof_rods: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(R1, χ²_red, R1 per rod, χ²_red per rod) on |F| of N points (all (N,)) on rods `rod` (N,) in 0..n_rods−1;
    χ²_red divides by `dof` overall and by `dof_rods` (n_rods,) per rod (each at least 1)."""
    r2 = ((F_calc - F_obs) / sigma_F) ** 2
    absolute = np.abs(F_calc - F_obs)
    tiny = np.finfo(float).tiny
    r1_rods = np.bincount(rod, weights=absolute, minlength=n_rods) / np.maximum(
        np.bincount(rod, weights=F_obs, minlength=n_rods), tiny)
    chi2_rods = np.bincount(rod, weights=r2, minlength=n_rods) / np.maximum(dof_rods, 1)
    return (float(absolute.sum() / max(F_obs.sum(), tiny)), float(r2.sum() / max(dof, 1)), r1_rods, chi2_rods)


def _multiple(length: float, reference: float, name: str) -> int:
    ratio = length / reference
    if abs(ratio - round(ratio)) > 1e-6 * ratio or round(ratio) < 1:
        raise InputError(f"the film's cell edge {name} = {length} Å is not an integer multiple of the data's "
                         f"reference cell ({reference} Å)")
    return round(ratio)
