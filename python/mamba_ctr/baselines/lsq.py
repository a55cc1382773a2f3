"""The classic direct fit of the structure model to measured intensities, as ROD and GenX do (issue 8).

The parameters of a `ParameterSpace` (bounds from the preset's sampling ranges) are fitted to the
intensities I (R, NL) by bounded trust-region least squares on ln I (default) or √I, Bragg points
excluded, with the simulator and a batched forward-difference Jacobian
(`mamba_ctr.reconstruct.refine.SimulatedLeastSquares`). Options:

* `start=`: where the local fit starts: the nominal structure (default) or a given estimate, e.g. the
  labels a network's prediction gives (ML-initialised refinement, issue 8.2).
* `n_starts`: multi-start; starts after the first are drawn uniformly inside the bounds from a random
  stream keyed by (seed, index), and the lowest cost wins.
* `global_search`: differential evolution over the bounds first (scipy, as GenX does; the given start
  is put into the population), then a local least-squares polish from its best member.
* `scale`: "none", "global" or "rods" (one scale factor per rod). Scale factors are free parameters
  eliminated exactly for every trial structure (variable projection: the optimal shift of ln I, or
  factor of √I, is solved in closed form), so they cost no extra Jacobian columns or DE dimensions.

Goodness of fit over the fitted points: R1 = Σ|√I_obs − √I_calc| / Σ√I_obs,
logR1 = Σ|log10 I_obs − log10 I_calc| / Σ|log10 I_obs|, χ²_red = Σ((I_obs − I_calc)/σ)² / (N − P − N_scale)
with σ given or Poisson σ = √max(I_obs, 1) (I in counts). Uncertainties σ_p = sqrt(diag((JᵀJ)⁻¹)) · s with
J the Jacobian of the fitted residuals and s² = Σr² / (N − P − N_scale) the reduced χ² of those residuals
(equal to χ²_red when the fit is weighted by σ); a parameter the data cannot determine (e.g. the top
layer's c, whose effect the top layer's z undo) gets σ_p = inf.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import eigh
from scipy.optimize import differential_evolution

from ..physics.presets import PerovskitePreset
from ..reconstruct.parameters import ParameterSpace
from ..reconstruct.refine import (
    FitBatch,
    FitResult,
    SimulatedLeastSquares,
    SolverOptions,
    fit_once,
    progress_bar,
    resolve_space,
    single_blas_thread,
)

TRANSFORMS = ("log", "sqrt")
SCALES = ("none", "global", "rods")
_NULL_RCOND = 1e-6  # singular values below this × the largest count as zero (finite-difference noise ~1e-8)


@dataclass(frozen=True)
class GlobalOptions:
    """Differential evolution settings (scipy.optimize.differential_evolution, updating="deferred").

    popsize × P trial structures per generation are simulated in one batched call. GenX's defaults are
    similar (best/1/bin, mutation 0.5–1, crossover 0.7).
    """

    popsize: int = 10
    maxiter: int = 200
    tol: float = 1e-6
    mutation: tuple[float, float] = (0.5, 1.0)
    recombination: float = 0.7
    strategy: str = "best1bin"

    def __post_init__(self) -> None:
        for name in ("popsize", "maxiter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0 <= self.recombination <= 1:
            raise ValueError(f"recombination must lie in [0, 1], got {self.recombination}")


@dataclass
class IntensityFit(FitResult):
    """A FitResult of an intensity fit, with goodness of fit and uncertainties.

    Attributes:
        r1, log_r1, chi2_red: goodness of fit over the fitted points (module docstring).
        uncertainties: (P,) σ_p of the parameters (inf where the data do not determine one).
        scales: (R,) fitted scale factor of each rod (ones for scale="none").
        n_points: fitted points N.
        n_starts: local fits run; best_start: index of the one kept (0 = the given start).
        transform: "log" or "sqrt".
    """

    r1: float = float("nan")
    log_r1: float = float("nan")
    chi2_red: float = float("nan")
    uncertainties: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scales: np.ndarray = field(default_factory=lambda: np.zeros(0))
    n_points: int = 0
    n_starts: int = 1
    best_start: int = 0
    transform: str = "log"


class IntensityResidual:
    """residual(I_calc (k, R, NL)) → (k, N): w · (T(s · I_calc) − T(I_obs)) over the fitted points.

    T is ln or √; s the scale factors (one per rod, one global, or 1), solved in closed form for each
    trial structure. `weights` (R, NL) are per-point weights on T (None: 1).
    """

    def __init__(self, I_obs: np.ndarray, used: np.ndarray, transform: str, scale: str,
                 weights: np.ndarray | None) -> None:
        self.used, self.transform, self.scale = used, transform, scale
        self.target = np.where(used, _transform(np.where(used, I_obs, 1.0), transform), 0.0)
        w = np.ones(used.shape) if weights is None else weights
        self.w2 = np.where(used, w * w, 0.0)  # squared weights, 0 off the fitted points
        self.weights = np.sqrt(self.w2)
        self._points = np.flatnonzero(used)  # flat indices of the fitted points, their weights and targets
        self._w_used, self._t_used = self.weights[used], self.target[used]
        self.n_scales = {"none": 0, "global": 1, "rods": int(np.count_nonzero(used.any(axis=1)))}[scale]

    def fitted(self, I_calc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(T(s · I_calc) (k, R, NL), s (k, R)): transformed model with the optimal scales."""
        t = _transform(I_calc, self.transform)
        k, R = I_calc.shape[:2]
        if self.scale == "none":
            return t, np.ones((k, R))
        axes = (2,) if self.scale == "rods" else (1, 2)
        w2 = self.w2[None]
        total = np.maximum(w2.sum(axis=axes, keepdims=True), np.finfo(float).tiny)
        if self.transform == "log":  # ln(s I) = ln s + ln I: the shift is the weighted mean difference
            shift = (w2 * (self.target - t)).sum(axis=axes, keepdims=True) / total
            shift = np.where(w2.sum(axis=axes, keepdims=True) > 0, shift, 0.0)
            return t + shift, np.broadcast_to(np.exp(shift)[..., 0], (k, R)).copy()
        numerator = (w2 * t * self.target).sum(axis=axes, keepdims=True)
        denominator = (w2 * t * t).sum(axis=axes, keepdims=True)
        factor = np.where(denominator > 0, numerator / np.maximum(denominator, np.finfo(float).tiny), 1.0)
        factor = np.maximum(factor, 0.0)
        return t * factor, np.broadcast_to((factor**2)[..., 0], (k, R)).copy()

    def __call__(self, I_calc: np.ndarray) -> np.ndarray:
        if self.scale == "none":  # elementwise: the same values on the fitted points only, in place (no temporaries)
            r = np.take(I_calc.reshape(I_calc.shape[0], -1), self._points, axis=1)
            _transform(r, self.transform, out=r)
            r -= self._t_used
            r *= self._w_used
            return np.asfortranarray(r)  # boolean indexing's layout: the Jacobian's, hence the solver's bits
        t, _ = self.fitted(I_calc)
        return (self.weights * (t - self.target))[:, self.used]


# ----------------------------------------------------------------- fitting
def fit_intensity(
    I, preset: PerovskitePreset, *, start=None, n_film: int | None = None, transform: str = "log",
    scale: str = "none", sigma=None, weight_by_sigma: bool = False, mask=None, n_starts: int = 1, seed: int = 0,
    index: int = 0, stop_cost: float | None = None, global_search: bool = False,
    global_options: GlobalOptions | None = None, space: ParameterSpace | None = None,
    options: SolverOptions | None = None, backend: str | None = "auto", threads: int = 1,
    keep_jacobian: bool = False,
) -> IntensityFit:
    """Fit the structure parameters of `preset` to measured intensities of one structure.

    Args:
        I: (R, NL) intensities on `preset.grid` (the simulator's units, or counts with a free scale).
        preset: the structure family whose parameters are fitted.
        start: the first start: None (ParameterSpace.nominal()), a (P,) vector, one Structures or a labels
            mapping (e.g. a network prediction's extracted labels: ML-initialised refinement).
        n_film: film layers (variable-thickness presets; default the largest).
        transform: "log" (fit ln I, default) or "sqrt" (fit √I).
        scale: "none", "global" or "rods" (a free scale factor per rod).
        sigma: (R, NL) standard deviations of I; None: Poisson, √max(I, 1) (I in counts).
        weight_by_sigma: weight the residuals by 1/σ of the transformed data (σ/I for ln I,
            σ / (2√max(I, σ)) for √I) instead of fitting them unweighted.
        mask: (R, NL) bool, points to fit (Bragg points are always left out). Needed for ln fits of data
            with zero counts.
        n_starts: local fits; starts after the first are uniform inside the bounds, keyed by (seed, index).
        seed, index: key of the random starts and of the differential evolution.
        stop_cost: stop trying starts once a fit's cost (½ Σ r²) is at most this.
        global_search: differential evolution over the bounds first (GlobalOptions; the start is put into
            its population), then a local least-squares polish from its best member (n_starts must be 1).
        space: a ParameterSpace instead of ParameterSpace(preset, n_film) (e.g. widened bounds).
        options: SolverOptions of the local fits.
        backend, threads: as for `simulate`; one thread by default (each call simulates only P structures,
            where OpenMP gains little and loses much on a busy machine: run several processes instead).
        keep_jacobian: keep the Jacobian and residuals at the solution in the result.

    Returns:
        IntensityFit (the best of the local fits).
    """
    space = resolve_space(preset, n_film, space)
    _check_choices(transform, scale, n_starts, global_search, global_options)
    I_obs, used, sigma_array = _check_intensities(I, sigma, mask, preset, transform)
    x0 = space.start_vectors(start, 1)[0]
    residual = IntensityResidual(I_obs, used, transform, scale,
                                 _sigma_weights(I_obs, sigma_array, used, transform) if weight_by_sigma else None)
    problem = SimulatedLeastSquares(space, residual, quantity="intensity", backend=backend, threads=threads,
                                    options=options)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
    starts = np.concatenate([x0[None], space.random(n_starts - 1, rng)])
    started = time.perf_counter()
    with single_blas_thread():
        fit = _fit_starts(problem, residual, starts, I_obs, sigma_array, stop_cost, global_search, global_options,
                          rng)
    fit.time = time.perf_counter() - started
    if not keep_jacobian:
        fit.jacobian = fit.residuals = None
    return fit


def _fit_starts(problem: SimulatedLeastSquares, residual: IntensityResidual, starts: np.ndarray, I_obs: np.ndarray,
                sigma: np.ndarray, stop_cost: float | None, global_search: bool, global_options: GlobalOptions | None,
                rng: np.random.Generator) -> IntensityFit:
    """The best local fit from `starts` (or from the best member of a differential evolution), with statistics."""
    totals = np.zeros(3, dtype=np.int64)
    if global_search:
        de_best, counts = _differential_evolution(problem, starts, global_options or GlobalOptions(), rng)
        totals += counts
        starts = de_best[None]
    best: FitResult | None = None
    best_start, run = 0, 0
    for i, x in enumerate(starts):
        result = fit_once(problem, x, keep_jacobian=True)
        totals += (result.n_evaluations, result.n_jacobians, result.n_simulated)
        run += 1
        if best is None or result.cost < best.cost:
            best, best_start = result, i
        if stop_cost is not None and best.cost <= stop_cost:
            break
    assert best is not None
    fit = _with_statistics(best, problem, residual, I_obs, sigma, problem.space.size)
    fit.n_evaluations, fit.n_jacobians, fit.n_simulated = (int(v) for v in totals)
    fit.n_starts, fit.best_start = run, -1 if global_search else best_start
    return fit


def fit_intensities(I, preset: PerovskitePreset, *, start=None, sigma=None, mask=None, seed: int = 0,
                    progress: bool | None = None, **kwargs) -> FitBatch:
    """fit_intensity for n structures: I (n, R, NL); start, sigma and mask may be per structure
    ((n, P) / n Structures / labels of shape (n,); (n, R, NL)) or shared. The random starts of
    structure i are keyed by (seed, i). Other arguments as for fit_intensity.

    progress: a tqdm bar (None: only when stderr is a terminal).
    """
    space = resolve_space(preset, kwargs.pop("n_film", None), kwargs.pop("space", None))
    I = np.asarray(I)
    if I.ndim != 3 or I.shape[1:] != preset.grid.shape:
        raise ValueError(f"I must have shape (n, R, NL) = (n, {preset.grid.shape[0]}, {preset.grid.shape[1]}), "
                         f"got {I.shape}")
    n = I.shape[0]
    starts = space.start_vectors(start, n)
    sigmas = _per_structure("sigma", sigma, n, preset)
    masks = _per_structure("mask", mask, n, preset)
    results: list[FitResult] = []
    for i in progress_bar(range(n), progress, "fit I"):
        results.append(fit_intensity(I[i], preset, start=starts[i], sigma=sigmas[i], mask=masks[i], seed=seed,
                                     index=i, space=space, **kwargs))
    return FitBatch(results)


# --------------------------------------------------------- global search
def _differential_evolution(problem: SimulatedLeastSquares, starts: np.ndarray, options: GlobalOptions,
                            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Best member of a differential evolution over the bounds (the first start in its population)."""
    space = problem.space
    problem.reset_counters()

    def costs(X: np.ndarray) -> np.ndarray:  # X (P, S): S trial vectors, one simulate call
        return problem.costs(np.ascontiguousarray(X.T))

    key = "rng" if "rng" in inspect.signature(differential_evolution).parameters else "seed"
    result = differential_evolution(
        costs, list(zip(space.lower, space.upper, strict=True)), strategy=options.strategy,
        maxiter=options.maxiter, popsize=options.popsize, tol=options.tol, mutation=options.mutation,
        recombination=options.recombination, polish=False, init="latinhypercube", x0=starts[0],
        updating="deferred", vectorized=True, **{key: rng},
    )
    counts = np.array([problem.n_evaluations, problem.n_jacobians, problem.n_simulated])
    return np.asarray(result.x), counts


# ------------------------------------------------------------- statistics
def _with_statistics(fit: FitResult, problem: SimulatedLeastSquares, residual: IntensityResidual,
                     I_obs: np.ndarray, sigma: np.ndarray, n_parameters: int) -> IntensityFit:
    I_model = problem.simulate_rows(fit.parameters[None])
    _, scales = residual.fitted(I_model)
    I_calc = (I_model * scales[..., None])[0]
    used = residual.used
    n_points = int(used.sum())
    dof = max(n_points - n_parameters - residual.n_scales, 1)
    o, c = I_obs[used], I_calc[used]
    root_o, root_c = np.sqrt(np.maximum(o, 0)), np.sqrt(np.maximum(c, 0))
    positive = o > 0
    log_o, log_c = np.log10(o[positive]), np.log10(np.maximum(c[positive], np.finfo(float).tiny))
    assert fit.jacobian is not None and fit.residuals is not None
    return IntensityFit(
        **{name: getattr(fit, name) for name in FitResult.__dataclass_fields__},
        r1=float(np.abs(root_o - root_c).sum() / max(root_o.sum(), np.finfo(float).tiny)),
        log_r1=float(np.abs(log_o - log_c).sum() / max(np.abs(log_o).sum(), np.finfo(float).tiny)),
        chi2_red=float(np.sum(((o - c) / sigma[used]) ** 2) / dof),
        uncertainties=parameter_uncertainties(fit.jacobian, fit.residuals, dof),
        scales=scales[0], n_points=n_points, transform=residual.transform,
    )


def parameter_uncertainties(jacobian: np.ndarray, residuals: np.ndarray, dof: int) -> np.ndarray:
    """(P,) σ_p = sqrt(diag((JᵀJ)⁻¹) · Σr²/dof); inf for parameters with a component in J's null space.

    Args:
        jacobian: (m, P) Jacobian of the residuals at the solution.
        residuals: (m,) residuals at the solution.
        dof: degrees of freedom (points − parameters − scale factors).
    """
    jacobian = np.asarray(jacobian, dtype=np.float64)
    residuals = np.asarray(residuals, dtype=np.float64)
    if jacobian.ndim != 2 or residuals.shape != (jacobian.shape[0],):
        raise ValueError(f"need a (m, P) Jacobian and (m,) residuals, got {jacobian.shape} and {residuals.shape}")
    # eigenvalues of the small P × P matrix JᵀJ are the squared singular values of J (an SVD of J costs more)
    eigenvalues, vectors = eigh(jacobian.T @ jacobian)  # scipy's: numpy's is 100× slower on a busy machine
    if eigenvalues.size == 0 or eigenvalues[-1] <= 0:
        return np.full(jacobian.shape[1], np.inf)
    kept = eigenvalues > _NULL_RCOND**2 * eigenvalues[-1]
    variance = float(residuals @ residuals) / max(dof, 1)
    covariance_diag = (vectors[:, kept] ** 2) @ (1.0 / eigenvalues[kept])
    in_null = (vectors[:, ~kept] ** 2).sum(axis=1) > 1e-6
    return np.where(in_null, np.inf, np.sqrt(covariance_diag * variance))


# ------------------------------------------------------------------ checks
def _transform(I: np.ndarray, transform: str, out: np.ndarray | None = None) -> np.ndarray:
    if transform == "log":
        return np.log(np.maximum(I, np.finfo(float).tiny, out=out), out=out)
    return np.sqrt(np.maximum(I, 0.0, out=out), out=out)


def _sigma_weights(I_obs: np.ndarray, sigma: np.ndarray, used: np.ndarray, transform: str) -> np.ndarray:
    """1/σ of ln I (I/σ) or of √I (2√max(I, σ)/σ) at the fitted points, 0 elsewhere."""
    o, s = np.where(used, I_obs, 1.0), np.where(used, sigma, 1.0)
    w = np.maximum(o, 0) / s if transform == "log" else 2 * np.sqrt(np.maximum(o, s)) / s
    return np.where(used, w, 0.0)


def _check_choices(transform: str, scale: str, n_starts: int, global_search: bool,
                   global_options: GlobalOptions | None) -> None:
    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {TRANSFORMS}, got {transform!r}")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if isinstance(n_starts, bool) or not isinstance(n_starts, (int, np.integer)) or n_starts < 1:
        raise ValueError(f"n_starts must be an integer ≥ 1, got {n_starts!r}")
    if global_options is not None and not isinstance(global_options, GlobalOptions):
        raise TypeError(f"global_options must be GlobalOptions, got {type(global_options).__name__}")
    if not isinstance(global_search, bool):
        raise TypeError(f"global_search must be True or False, got {global_search!r}")
    if global_search and n_starts != 1:
        raise ValueError(f"global_search polishes the best member of the evolution: n_starts must be 1, got {n_starts}")


def _check_intensities(I, sigma, mask, preset: PerovskitePreset,
                       transform: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(I (R, NL) float64, fitted-points mask (R, NL), σ (R, NL)); ValueError on bad input."""
    grid = preset.grid
    try:
        I_obs = np.asarray(I, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"I must be an array of intensities: {error}") from None
    if I_obs.shape != grid.shape:
        raise ValueError(f"I must have shape (R, NL) = {grid.shape} on the preset's grid, got {I_obs.shape}")
    used = np.broadcast_to(~grid.bragg, grid.shape).copy()
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != grid.shape or mask.dtype != bool:
            raise ValueError(f"mask must be a bool array of shape {grid.shape}, got {mask.dtype} {mask.shape}")
        used &= mask
    if not used.any():
        raise ValueError("no points to fit (the mask leaves none outside the Bragg points)")
    if not np.all(np.isfinite(I_obs[used])):
        raise ValueError(f"I has {np.count_nonzero(~np.isfinite(I_obs[used]))} NaN/inf values at fitted points "
                         "(leave them out with mask=)")
    if transform == "log" and np.any(I_obs[used] <= 0):
        raise ValueError(f"a ln I fit needs I > 0 at every fitted point, got {np.count_nonzero(I_obs[used] <= 0)} "
                         "points ≤ 0 (leave them out with mask=I > 0, or use transform='sqrt')")
    if transform == "sqrt" and np.any(I_obs[used] < 0):
        raise ValueError(f"a √I fit needs I ≥ 0, got {np.count_nonzero(I_obs[used] < 0)} negative points")
    if sigma is None:
        sigma_array = np.sqrt(np.maximum(np.where(np.isfinite(I_obs), I_obs, 1.0), 1.0))
    else:
        sigma_array = np.asarray(sigma, dtype=np.float64)
        if sigma_array.shape != grid.shape:
            raise ValueError(f"sigma must have shape (R, NL) = {grid.shape}, got {sigma_array.shape}")
        if not np.all(np.isfinite(sigma_array[used])) or np.any(sigma_array[used] <= 0):
            raise ValueError("sigma must be finite and > 0 at every fitted point")
    return I_obs, used, sigma_array


def _per_structure(name: str, value, n: int, preset: PerovskitePreset) -> list:
    """One entry per structure from None, one (R, NL) array or an (n, R, NL) array."""
    if value is None:
        return [None] * n
    array = np.asarray(value)
    if array.shape == preset.grid.shape:
        return [array] * n
    if array.shape == (n, *preset.grid.shape):
        return list(array)
    raise ValueError(f"{name} must have shape (R, NL) = {preset.grid.shape} or (n, R, NL) with n = {n}, "
                     f"got {array.shape}")
