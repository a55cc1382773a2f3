"""Least-squares refinement of a general structure against measured rods, as ROD and GenX users do it.

The parameters named in a PARAMS file (`physics.structure_params.FitParameters`: z of atom groups, c, occupancies,
site mixing, Debye–Waller, β, free scales; bounds and ties) are fitted to the measured |F| by bounded trust-region
least squares with σ-weighted residuals

    r_i = (√(s_rod · I_calc,i) − |F|_obs,i) / σ_F,i

where I_calc is the simulated intensity at the measured (H, K, L) and s_rod the scale factor of the point's rod:
solved in closed form for every trial structure (one global factor or one per rod, variable projection through
`baselines.lsq.IntensityResidual`), or fitted as a parameter when PARAMS asks for it. Intensities read from a
file become |F| = √max(I, 0) with σ_F = σ_I / (2√max(I, σ_I)) (ROD's conversion).

The solver, its batched forward-difference Jacobian and the single-BLAS-thread setting are those of
`reconstruct.refine.SimulatedLeastSquares`; this module only supplies the model on measured points.

Goodness of fit over the fitted points: χ²_red = Σ r² / (N − P − N_scale), R1 = Σ| |F|_obs − |F|_calc | / Σ|F|_obs.
Parameter errors σ_p = sqrt(diag((JᵀJ)⁻¹) · χ²_red) (`baselines.lsq.parameter_uncertainties`: the errors are
scaled by the fit's own χ²_red, so a wrong overall σ level does not change them; inf where the data cannot
determine a parameter); correlations from the same (JᵀJ)⁻¹.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
from scipy.linalg import eigh

from ..errors import InputError
from ..measured_sim import MeasuredSimulator, f_figures, relative_sigma
from ..physics.model import StructureModel, Structures
from ..physics.structure_params import FitParameters
from ..reconstruct.parameters import ParameterSpace
from ..reconstruct.refine import SimulatedLeastSquares, SolverOptions, fit_once, progress_bar, single_blas_thread
from .lsq import IntensityResidual, parameter_uncertainties

ERROR_MODELS = ("poisson", "relative:<fraction>", "constant:<sigma>")


# ------------------------------------------------------------------ data
@dataclass(frozen=True, eq=False)
class MeasuredPoints:
    """Measured points grouped by rod, padded to one length: the arrays are (R, NL) with `used` marking points.

    Within a rod the points are sorted by L, so that `array[used]` lists them rod after rod in the order of
    `MeasuredSimulator.points`.

    Attributes:
        rods: (H, K) of each rod in the data's basis (as measured; fractional values kept).
        L: (R, NL) L in units of 2π/c_ref (NaN on padding).
        F: (R, NL) |F| measured (0 on padding).
        sigma: (R, NL) σ of |F| (1 on padding).
        used: (R, NL) bool, the measured points.
        quantity: what the file held ("I" or "F").
        error_model: where σ came from ("file" or the error model).
    """

    rods: tuple[tuple[float, float], ...]
    L: np.ndarray
    F: np.ndarray
    sigma: np.ndarray
    used: np.ndarray
    quantity: str
    error_model: str

    @classmethod
    def from_points(cls, rod: Sequence[int] | np.ndarray, rods: Sequence[tuple[float, float]], L, value, sigma,
                    quantity: str, error_model: str = "") -> MeasuredPoints:
        """Points of rod index `rod` (N,) with L, value (I or |F|) and σ (None: use `error_model`), each (N,).

        An `error_model` replaces the file's σ when both are given (never silently: `error_model` says which).
        """
        rod_of = np.asarray(rod, dtype=np.int64)
        L, value = np.asarray(L, dtype=np.float64), np.asarray(value, dtype=np.float64)
        if quantity not in ("I", "F"):
            raise InputError(f"quantity must be I or F, got {quantity!r}")
        if not (rod_of.shape == L.shape == value.shape) or rod_of.ndim != 1:
            raise InputError(f"rod, L and value must be (N,) arrays, got {rod_of.shape}, {L.shape}, {value.shape}")
        if not (np.all(np.isfinite(L)) and np.all(np.isfinite(value))):
            raise InputError("L and the measured values must be finite numbers")
        if quantity == "F" and np.any(value < 0):
            raise InputError(f"|F| must be ≥ 0, got {np.count_nonzero(value < 0)} negative values")
        if sigma is None or error_model:
            sigma, source = sigma_from_model(value, quantity, error_model), error_model
        else:
            sigma, source = np.asarray(sigma, dtype=np.float64), "file"
            if sigma.shape != value.shape or not np.all(np.isfinite(sigma)) or np.any(sigma <= 0):
                raise InputError("σ must be finite and > 0 at every point (state an error model if the file's σ "
                                 "are not)")
        if quantity == "I":  # ROD's conversion, as measured_sim.agreement does
            F = np.sqrt(np.maximum(value, 0.0))
            sigma = sigma / (2 * np.sqrt(np.maximum(value, sigma)))
        else:
            F = value
        R = len(rods)
        if rod_of.size == 0 or rod_of.min() < 0 or rod_of.max() >= R or np.any(np.bincount(rod_of, minlength=R) == 0):
            raise InputError("every rod needs at least one point")
        shape = (R, int(np.bincount(rod_of).max()))
        out = {"L": np.full(shape, np.nan), "F": np.zeros(shape), "sigma": np.ones(shape)}
        used = np.zeros(shape, dtype=bool)
        for r in range(R):
            mine = np.flatnonzero(rod_of == r)
            mine = mine[np.argsort(L[mine], kind="stable")]
            n = mine.size
            out["L"][r, :n], out["F"][r, :n], out["sigma"][r, :n] = L[mine], F[mine], sigma[mine]
            used[r, :n] = True
        return cls(tuple((float(h), float(k)) for h, k in rods), out["L"], out["F"], out["sigma"], used, quantity,
                   source)

    @classmethod
    def from_simulator(cls, simulator: MeasuredSimulator, error_model: str = "") -> MeasuredPoints:
        """The points `simulator` produces (its rods, in its point order), in the file's quantity."""
        data = simulator.data
        index = simulator.points
        return cls.from_points(simulator.rod_of_point, [(float(r.key[0]), float(r.key[1])) for r in simulator.rods],
                               data.l[index], data.value[index], None if data.sigma is None else data.sigma[index],
                               data.quantity, error_model)

    @property
    def n_points(self) -> int:
        return int(self.used.sum())


def sigma_from_model(value: np.ndarray, quantity: str, error_model: str) -> np.ndarray:
    """σ of `value` (I or |F|) from an error model: "poisson" (σ_I = √max(I, 1), I in counts; I only),
    "relative:f" (`measured_sim.relative_sigma`: f · max(|value|, median |value|)) or "constant:s"."""
    if not error_model:
        raise InputError("the data give no σ: state an error model (poisson, relative:<fraction>, "
                         "constant:<sigma>)")
    kind, _, argument = error_model.partition(":")
    if kind == "poisson" and not argument:
        if quantity != "I":
            raise InputError("the poisson error model needs intensities in counts (quantity I)")
        return np.sqrt(np.maximum(value, 1.0))
    try:
        number = float(argument)
    except ValueError:
        number = float("nan")
    if kind in ("relative", "constant") and np.isfinite(number) and number > 0:
        return np.full(value.shape, number) if kind == "constant" else relative_sigma(value, number)
    raise InputError(f"error model must be one of {', '.join(ERROR_MODELS)} with a number > 0, got {error_model!r}")


# ------------------------------------------------------------------ model
class MeasuredLeastSquares(SimulatedLeastSquares):
    """SimulatedLeastSquares whose rows are the measured points of a `MeasuredSimulator` (free scales applied).

    β goes to the simulator (Robinson's factor with each rod's Bragg L and spacing), not into the Structures.
    """

    def __init__(self, params: FitParameters, simulator: MeasuredSimulator, points: MeasuredPoints,
                 residual: IntensityResidual, options: SolverOptions | None = None) -> None:
        # FitParameters offers what the solver uses of a ParameterSpace: names, lower, upper, clip, labels
        super().__init__(cast(ParameterSpace, params), residual, quantity="intensity",
                         backend=simulator.backend, threads=1, options=options)
        self.params, self.simulator, self.points = params, simulator, points
        self._models: dict[bytes, StructureModel] = {}

    def _model_for(self, u_iso: np.ndarray) -> StructureModel:
        """The structure model with these Debye–Waller factors (cached: a fit visits few sets)."""
        key = u_iso.tobytes()
        if key not in self._models:
            if len(self._models) > 64:
                self._models.clear()
            params = self.params
            self._models[key] = params.model_with(u_iso) if params.varies_debye_waller else params.model
        return self._models[key]

    def simulate_rows(self, X: np.ndarray) -> np.ndarray:
        arrays = self.params.arrays(X)
        beta = arrays["beta"][:, 0].copy()
        arrays["beta"] = np.zeros_like(arrays["beta"])
        flat = np.empty((X.shape[0], self.points.n_points))
        groups, which = np.unique(arrays["u_iso"], axis=0, return_inverse=True)
        for g, u_iso in enumerate(groups):  # one model per distinct set of Debye–Waller factors
            rows = np.flatnonzero(which.reshape(-1) == g)
            part = {name: value[rows] for name, value in arrays.items()}
            flat[rows] = self.simulator.intensity(self.params.structures(part, self._model_for(u_iso)), beta[rows])
        self.n_simulated += X.shape[0]
        out = np.zeros((X.shape[0], *self.points.used.shape))
        out[:, self.points.used] = flat
        return out * arrays["scale"][:, :, None]

    def scaled(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(I_calc (R, NL) with every scale applied, the scales (R,)) of one vector x."""
        arrays = self.params.arrays(x[None])
        I_model = self.simulate_rows(x[None])
        _, closed = cast(IntensityResidual, self.residual).fitted(I_model)
        scales = closed[0] * arrays["scale"][0]
        return I_model[0] * closed[0][:, None], scales


# ------------------------------------------------------------------ result
@dataclass
class Goodness:
    """χ²_red and R1 (on |F|), overall and per rod."""

    chi2_red: float
    r1: float
    chi2_red_rods: np.ndarray
    r1_rods: np.ndarray


@dataclass
class StructureFit:
    """The outcome of `fit_structure`.

    Attributes:
        params: the resolved parameters (names, bounds, ties); points: the fitted data.
        x_start, x: (P,) free vector at the start and fitted; values_start, values: every parameter (Q,).
        errors: (Q,) σ of every parameter (ties propagate their target's σ); correlation (P, P).
        before, after: Goodness at the start and at the solution.
        I_start, I_fit: (R, NL) calculated intensities with their scales; scales_start, scales (R,).
        structure: the fitted structure (its model carries fitted Debye–Waller factors).
        n_points, dof, n_scales: fitted points, degrees of freedom, closed-form scale factors.
        costs: final cost (½ Σ r²) of every start; best_start: the one kept (0 = the given structure).
        n_evaluations, n_simulated, seconds: counters of all starts; evaluations_per_second = n_simulated / s.
        success, message: of the best start's solver run.
    """

    params: FitParameters
    points: MeasuredPoints
    x_start: np.ndarray
    x: np.ndarray
    values_start: np.ndarray
    values: np.ndarray
    errors: np.ndarray
    correlation: np.ndarray
    before: Goodness
    after: Goodness
    I_start: np.ndarray
    I_fit: np.ndarray
    scales_start: np.ndarray
    scales: np.ndarray
    structure: Structures
    n_points: int
    dof: int
    n_scales: int
    costs: np.ndarray
    best_start: int
    n_evaluations: int
    n_simulated: int
    seconds: float
    success: bool
    message: str
    starts: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    @property
    def evaluations_per_second(self) -> float:
        """Structures simulated per second on all measured points (Jacobian columns included)."""
        return self.n_simulated / max(self.seconds, 1e-12)

    def moved(self) -> np.ndarray:
        """(Q,) (value − start) / σ of every parameter (NaN where σ is inf or 0)."""
        errors = np.where(np.isfinite(self.errors) & (self.errors > 0), self.errors, np.nan)
        return (self.values - self.values_start) / errors


def goodness(points: MeasuredPoints, I_calc: np.ndarray, n_free: int) -> Goodness:
    """χ²_red (dof = N − n_free) and R1 on |F| of calculated intensities I_calc (R, NL) with scales applied."""
    used = points.used
    rod = np.nonzero(used)[0]
    r1, chi2_red, r1_rods, chi2_red_rods = f_figures(
        points.F[used], np.sqrt(np.maximum(I_calc[used], 0.0)), points.sigma[used], rod, used.shape[0],
        points.n_points - n_free, used.sum(axis=1))
    return Goodness(chi2_red=chi2_red, r1=r1, chi2_red_rods=chi2_red_rods, r1_rods=r1_rods)


# ------------------------------------------------------------------ fitting
def fit_structure(params: FitParameters, points: MeasuredPoints, simulator: MeasuredSimulator, *,
                  n_starts: int = 1, seed: int = 0, spread: float = 0.25, options: SolverOptions | None = None,
                  progress: bool | None = None) -> StructureFit:
    """Fit `params` to `points` from the structure `params` was resolved against (module docstring).

    Args:
        params: what is free (FitParameters of the start structure; its rods must be `points.rods`).
        points: the measured points with σ (`MeasuredPoints.from_simulator`).
        simulator: the film on the measured points (its backend is used).
        n_starts: local fits; start 0 is the given structure, start i ≥ 1 is it moved by
            spread × U(−½, ½) × (upper − lower) per parameter (clipped), drawn from the stream (seed, i).
        seed: key of the starts. spread: see n_starts (1: anywhere within the bounds).
        options: SolverOptions of scipy's least_squares.
        progress: a tqdm bar over the starts (None: when stderr is a terminal).
    """
    if isinstance(n_starts, bool) or not isinstance(n_starts, int) or n_starts < 1:
        raise InputError(f"n_starts must be an integer ≥ 1, got {n_starts!r}")
    if not 0 < spread <= 1:
        raise InputError(f"spread must lie in (0, 1], got {spread!r}")
    if [tuple(r) for r in params.rods] != list(points.rods):
        raise ValueError("params were resolved against other rods than points.rods")
    residual = IntensityResidual(points.F**2, points.used, "sqrt", params.scale_mode,
                                 np.where(points.used, 1.0 / points.sigma, 0.0))
    if simulator.n_points != points.n_points:
        raise ValueError("points are not those of the simulator (use MeasuredPoints.from_simulator)")
    problem = MeasuredLeastSquares(params, simulator, points, residual, options)
    x0 = _fill_scales(params, problem, residual)
    starts = _starts(params, x0, n_starts, seed, spread)
    n_scales = residual.n_scales
    n_free = params.size + n_scales
    began = time.perf_counter()
    I_start, scales_start = problem.scaled(x0)
    fits, totals = [], np.zeros(2, dtype=np.int64)
    with single_blas_thread():
        for i in progress_bar(range(n_starts), progress, "fit"):
            result = fit_once(problem, starts[i], keep_jacobian=True)
            totals += (result.n_evaluations, result.n_simulated)
            fits.append(result)
    costs = np.array([f.cost for f in fits])
    best = int(np.argmin(costs))
    fit = fits[best]
    I_fit, scales = problem.scaled(fit.parameters)
    seconds = time.perf_counter() - began
    dof = max(points.n_points - n_free, 1)
    assert fit.jacobian is not None and fit.residuals is not None
    errors_free = parameter_uncertainties(fit.jacobian, fit.residuals, dof)
    arrays = params.arrays(fit.parameters[None])
    model = params.model_with(arrays["u_iso"][0]) if params.varies_debye_waller else params.model
    return StructureFit(
        params=params, points=points, x_start=x0, x=fit.parameters, values_start=params.full(x0)[0],
        values=params.full(fit.parameters)[0], errors=_all_errors(params, errors_free),
        correlation=correlation(fit.jacobian), before=goodness(points, I_start, n_free),
        after=goodness(points, I_fit, n_free), I_start=I_start, I_fit=I_fit, scales_start=scales_start,
        scales=scales, structure=params.structures(arrays, model), n_points=points.n_points, dof=dof,
        n_scales=n_scales, costs=costs, best_start=best, n_evaluations=int(totals[0]) + 2,
        n_simulated=int(totals[1]) + 2, seconds=seconds, success=fit.success, message=fit.message, starts=starts,
    )


def correlation(jacobian: np.ndarray) -> np.ndarray:
    """(P, P) correlation matrix from (JᵀJ)⁻¹ (pseudo-inverse; NaN rows for undetermined parameters)."""
    eigenvalues, vectors = eigh(jacobian.T @ jacobian)
    P = jacobian.shape[1]
    if P == 0 or eigenvalues[-1] <= 0:
        return np.full((P, P), np.nan)
    kept = eigenvalues > 1e-12 * eigenvalues[-1]  # the null-space rule of lsq.parameter_uncertainties (1e-6²)
    covariance = (vectors[:, kept] / eigenvalues[kept]) @ vectors[:, kept].T
    in_null = (vectors[:, ~kept] ** 2).sum(axis=1) > 1e-6
    scale = np.sqrt(np.diag(covariance))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = covariance / np.outer(scale, scale)
    out[in_null, :] = np.nan
    out[:, in_null] = np.nan
    return out


def _all_errors(params: FitParameters, errors_free: np.ndarray) -> np.ndarray:
    column = {name: i for i, name in enumerate(params.names)}
    return np.array([errors_free[column[p.name]] if p.tie is None else abs(p.tie.factor) *
                     errors_free[column[p.tie.other]] for p in params.parameters])


def _fill_scales(params: FitParameters, problem: MeasuredLeastSquares, residual: IntensityResidual) -> np.ndarray:
    """x0 with each free scale lacking a value set to its closed-form value at the start (clipped)."""
    x0 = params.x0
    missing = np.isnan(x0)
    if not missing.any():
        return x0
    trial = np.where(missing, 1.0, x0)
    I_model = problem.simulate_rows(trial[None])
    for i in np.flatnonzero(missing):
        p = next(q for q in params.parameters if q.name == params.names[i])
        rods = [s.index for s in p.slots]
        t, target, w2 = np.sqrt(I_model[0, rods]), residual.target[rods], residual.w2[rods]
        factor = (w2 * t * target).sum() / max((w2 * t * t).sum(), np.finfo(float).tiny)
        x0[i] = np.clip(factor**2, params.lower[i], params.upper[i])
    return x0


def _starts(params: FitParameters, x0: np.ndarray, n: int, seed: int, spread: float) -> np.ndarray:
    width = params.upper - params.lower
    starts = [x0]
    for i in range(1, n):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(i,)))
        starts.append(np.clip(x0 + spread * (rng.uniform(size=params.size) - 0.5) * width, params.lower,
                              params.upper))
    return np.array(starts)
