"""Least-squares refinement of the structure model against a film field U, with the simulator.

The parameters of a `ParameterSpace` are fitted by bounded trust-region least squares
(scipy.optimize.least_squares, method "trf") to the residuals [Re, Im] of U_calc − U_obs. The Jacobian
is taken by forward differences computed in ONE batched `simulate` call per Jacobian (all P perturbed
structures together), so a Jacobian costs about one kernel call on P structures.

The engine (`SimulatedLeastSquares`, `fit_once`) is shared with the intensity fits of
`mamba_ctr.baselines.lsq`.

Speed note: the matrices of a fit are small (P ≤ ~100 columns), and a multi-threaded BLAS on a busy machine
makes their products and factorisations 10–20× slower than one thread. Fits therefore run with one BLAS
thread when threadpoolctl is installed (otherwise set OPENBLAS_NUM_THREADS=1 before starting Python), and
the trust-region subproblems are solved by LSMR (SolverOptions.tr_solver) rather than an SVD per iteration.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares

from ..physics.grid import Grid
from ..physics.presets import LabelSpec, PerovskitePreset
from ..simulate import simulate
from .levenberg import levenberg_marquardt
from .parameters import ParameterSpace

Residual = Callable[[np.ndarray], np.ndarray]
"""residual(model) → (k, m): residual vectors of k simulated rods, model (k, R, NL) U or I."""


@dataclass(frozen=True)
class SolverOptions:
    """Settings of scipy.optimize.least_squares (method "trf") and of the finite differences.

    Attributes:
        xtol, ftol, gtol: least_squares tolerances.
        max_nfev: residual evaluations per fit (None: scipy's default, 100 × P).
        fd_step: forward-difference step as a fraction of each parameter's bound width.
        x_scale: "jac" (scale by the Jacobian's column norms) or "bounds" (by the bound widths).
        tr_solver: "lsmr" (iterative; default) or "exact" (an SVD of the Jacobian per iteration: as robust
            here, slower, and 10–20× slower again with a multi-threaded BLAS on a busy machine).
        method: "trf" (scipy.optimize.least_squares; default, for any start) or "lm" (`levenberg`: bounded
            Levenberg–Marquardt on the normal equations; 2–3× faster for a fit started close to the answer,
            such as the refinement of a network's prediction; x_scale and tr_solver do not apply).
    """

    xtol: float = 1e-10
    ftol: float = 1e-10
    gtol: float = 1e-10
    max_nfev: int | None = 200
    fd_step: float = 1e-7
    x_scale: str = "jac"
    tr_solver: str = "lsmr"
    method: str = "trf"

    def __post_init__(self) -> None:
        for name in ("xtol", "ftol", "gtol", "fd_step"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a number ≥ 0, got {value!r}")
        if not 0 < self.fd_step < 0.01:
            raise ValueError(f"fd_step must lie in (0, 0.01), got {self.fd_step}")
        if self.max_nfev is not None and (isinstance(self.max_nfev, bool) or not isinstance(self.max_nfev, int)
                                          or self.max_nfev < 1):
            raise ValueError(f"max_nfev must be a positive integer or None, got {self.max_nfev!r}")
        if self.x_scale not in ("jac", "bounds"):
            raise ValueError(f"x_scale must be 'jac' or 'bounds', got {self.x_scale!r}")
        if self.method not in ("trf", "lm"):
            raise ValueError(f"method must be 'trf' or 'lm', got {self.method!r}")
        if self.tr_solver not in ("exact", "lsmr"):
            raise ValueError(f"tr_solver must be 'exact' or 'lsmr', got {self.tr_solver!r}")


@dataclass
class FitResult:
    """One fitted structure.

    Attributes:
        parameters: (P,) fitted vector of the ParameterSpace (`names` gives its entries).
        names: (P,) parameter names.
        labels: preset.labels of the fitted structure (name → float).
        cost: ½ Σ r² at the solution (the residuals of the fit, in their units).
        n_evaluations: residual evaluations (each one simulated structure).
        n_jacobians: Jacobian evaluations (each one batched simulate call of P structures).
        n_simulated: structures simulated in all.
        success: least_squares reported convergence (a tolerance was met, not the evaluation limit).
        time: wall-clock seconds of the fit.
        message: least_squares' message.
        jacobian: (m, P) Jacobian of the residuals at the solution (None unless kept).
        residuals: (m,) residuals at the solution (None unless kept).
    """

    parameters: np.ndarray
    names: tuple[str, ...]
    labels: dict[str, float]
    cost: float
    n_evaluations: int
    n_jacobians: int
    n_simulated: int
    success: bool
    time: float
    message: str
    jacobian: np.ndarray | None = field(default=None, repr=False)
    residuals: np.ndarray | None = field(default=None, repr=False)


@dataclass
class FitBatch:
    """Fits of n structures; `values(name)` stacks any attribute of the fits along a first axis."""

    results: list[FitResult]

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, index: int) -> FitResult:
        return self.results[index]

    def values(self, name: str) -> np.ndarray:
        """(n, ...) the attribute `name` of every fit."""
        return np.array([getattr(result, name) for result in self.results])

    @property
    def parameters(self) -> np.ndarray:
        """(n, P) fitted vectors."""
        return self.values("parameters")

    @property
    def labels(self) -> dict[str, np.ndarray]:
        """Label name → (n,) fitted labels."""
        if not self.results:
            return {}
        return {name: np.array([r.labels[name] for r in self.results]) for name in self.results[0].labels}

    @property
    def cost(self) -> np.ndarray:
        return self.values("cost")

    @property
    def success(self) -> np.ndarray:
        return self.values("success")

    @property
    def time(self) -> np.ndarray:
        """(n,) seconds per fit."""
        return self.values("time")

    @property
    def n_evaluations(self) -> np.ndarray:
        return self.values("n_evaluations")


class SimulatedLeastSquares:
    """Residuals of structure parameter vectors through the simulator, and their forward-difference Jacobian.

    Args:
        space: the structure parameters.
        residual: residual(model (k, R, NL)) → (k, m).
        quantity: "field" (simulate U) or "intensity" (simulate I).
        backend, threads: as for `simulate` (always float64 here: finite differences need it).
        options: SolverOptions.
    """

    def __init__(self, space: ParameterSpace, residual: Residual, *, quantity: str = "field",
                 backend: str | None = "auto", threads: int = 1, options: SolverOptions | None = None) -> None:
        if quantity not in ("field", "intensity"):
            raise ValueError(f"quantity must be 'field' or 'intensity', got {quantity!r}")
        if options is not None and not isinstance(options, SolverOptions):
            raise TypeError(f"options must be SolverOptions, got {type(options).__name__}")
        self.space, self.residual, self.quantity = space, residual, quantity
        self.backend, self.threads = backend, threads
        self.options = options or SolverOptions()
        self.n_evaluations = self.n_jacobians = self.n_simulated = 0
        self._last_x: np.ndarray | None = None
        self._last_residual = np.zeros(0)

    @property
    def grid(self) -> Grid:
        return self.space.preset.grid

    def simulate_rows(self, X: np.ndarray) -> np.ndarray:
        """(k, R, NL) U or I of the (k, P) parameter vectors, in one simulate call."""
        rods = simulate(self.space.structures(X), self.grid, backend=self.backend, dtype="float64",
                        film_field=self.quantity == "field", threads=self.threads)
        self.n_simulated += X.shape[0]
        return rods.film_field if self.quantity == "field" else rods.intensity  # type: ignore[return-value]

    def _residual(self, x: np.ndarray) -> np.ndarray:
        """(m,) residual of x, reused while x does not change (least_squares asks fun then jac at one x)."""
        if self._last_x is None or not np.array_equal(self._last_x, x):
            self._last_residual = self.residual(self.simulate_rows(x[None, :]))[0]
            self._last_x = x.copy()
        return self._last_residual

    def fun(self, x: np.ndarray) -> np.ndarray:
        """(m,) residual vector of x."""
        self.n_evaluations += 1
        return self._residual(x).copy()

    def costs(self, X: np.ndarray) -> np.ndarray:
        """(k,) ½ Σ r² of k vectors (k, P), in one simulate call (for population methods)."""
        self.n_evaluations += X.shape[0]
        r = self.residual(self.simulate_rows(X))
        return 0.5 * np.einsum("km,km->k", r, r)

    def jac(self, x: np.ndarray) -> np.ndarray:
        """(m, P) forward-difference Jacobian (a backward step where a forward one would leave the bounds)."""
        self.n_jacobians += 1
        r0 = self._residual(x)
        space = self.space
        step = self.options.fd_step * (space.upper - space.lower)
        step = np.where(x + step > space.upper, -step, step)
        shifted = self.residual(self.simulate_rows(x[None, :] + np.diag(step)))
        shifted -= r0  # in place: large temporaries cost page faults at every Jacobian
        shifted /= step[:, None]
        return shifted.T

    def solve(self, x0: np.ndarray, final_jacobian: bool = True):
        """scipy OptimizeResult of least_squares (or `levenberg_marquardt`) from x0 (inside the bounds) and the
        seconds it took. final_jacobian: whether the "lm" result needs the Jacobian at the solution ("trf"
        always has it)."""
        options, space = self.options, self.space
        x_scale = "jac" if options.x_scale == "jac" else space.upper - space.lower
        started = time.perf_counter()
        with single_blas_thread():
            if options.method == "lm":
                solution = levenberg_marquardt(self.fun, self.jac, x0, space.lower, space.upper, xtol=options.xtol,
                                               ftol=options.ftol, gtol=options.gtol, max_nfev=options.max_nfev,
                                               final_jacobian=final_jacobian)
                return solution, time.perf_counter() - started
            solution = least_squares(self.fun, x0, jac=self.jac, bounds=(space.lower, space.upper), method="trf",
                                     xtol=options.xtol, ftol=options.ftol, gtol=options.gtol,
                                     max_nfev=options.max_nfev, x_scale=x_scale, tr_solver=options.tr_solver)
        return solution, time.perf_counter() - started

    def reset_counters(self) -> None:
        self.n_evaluations = self.n_jacobians = self.n_simulated = 0


# The ML-initialised refinement (a fit started from a network's prediction): the bounded Levenberg–Marquardt,
# 2.5–3× faster than trf with the same 200/200 exact recoveries (results/refine-ml-init).
REFINE_OPTIONS = SolverOptions(method="lm")


def fit_once(problem: SimulatedLeastSquares, x0: np.ndarray, keep_jacobian: bool = False) -> FitResult:
    """One least-squares fit of `problem` from x0 (moved into the bounds)."""
    space = problem.space
    problem.reset_counters()
    solution, seconds = problem.solve(space.clip(x0)[0], final_jacobian=keep_jacobian)
    x = np.asarray(solution.x)
    labels = {name: float(value[0]) for name, value in space.labels(x).items()}
    return FitResult(
        parameters=x, names=space.names, labels=labels, cost=float(solution.cost),
        n_evaluations=problem.n_evaluations, n_jacobians=problem.n_jacobians, n_simulated=problem.n_simulated,
        success=bool(solution.status > 0), time=seconds, message=str(solution.message),
        jacobian=np.asarray(solution.jac) if keep_jacobian else None,
        residuals=np.asarray(solution.fun) if keep_jacobian else None,
    )


# --------------------------------------------------------------------- U fit
def field_residual(U_obs: np.ndarray, weights: np.ndarray | None = None) -> Residual:
    """residual(U) = w · (U − U_obs) as [Re, Im] over all points: (k, 2·R·NL)."""

    def residual(U: np.ndarray) -> np.ndarray:
        difference = U - U_obs
        if weights is not None:
            difference = difference * weights
        k = difference.shape[0]
        return np.concatenate([difference.real.reshape(k, -1), difference.imag.reshape(k, -1)], axis=1)

    return residual


def refine_field(
    U, preset: PerovskitePreset, *, start=None, n_film: int | None = None, weights=None,
    space: ParameterSpace | None = None, options: SolverOptions | None = None,
    backend: str | None = "auto", threads: int = 1, keep_jacobian: bool = False,
) -> FitResult:
    """Fit the structure parameters of `preset` to one film field U by bounded least squares.

    Args:
        U: (R, NL) complex film field on `preset.grid` (electrons, the simulator's units).
        preset: the structure family whose parameters are fitted.
        start: None (ParameterSpace.nominal()), a (P,) parameter vector, one Structures, or a labels
            mapping (e.g. the labels extracted from the density; see ParameterSpace.from_labels).
            It is moved into the bounds.
        n_film: film layers (variable-thickness presets; default the largest).
        weights: optional (R, NL) non-negative real weights on U_calc − U_obs (0 drops a point).
        space: a ParameterSpace to use instead of ParameterSpace(preset, n_film) (e.g. widened bounds).
        options: SolverOptions.
        backend, threads: as for `simulate`; one thread by default (each call simulates only P structures,
            where OpenMP gains little and loses much on a busy machine: run several processes instead).
        keep_jacobian: keep the Jacobian and residuals at the solution.

    Returns:
        FitResult.
    """
    if np.ndim(U) != 2:
        raise ValueError(f"U must be one (R, NL) field (refine_fields takes a batch), got shape {np.shape(U)}")
    return refine_fields(np.asarray(U)[None], preset, start=start, n_film=n_film, weights=weights, space=space,
                         options=options, backend=backend, threads=threads, keep_jacobian=keep_jacobian,
                         progress=False)[0]


def refine_fields(
    U, preset: PerovskitePreset, *, start=None, n_film: int | None = None, weights=None,
    space: ParameterSpace | None = None, options: SolverOptions | None = None,
    backend: str | None = "auto", threads: int = 1, keep_jacobian: bool = False, progress: bool | None = None,
) -> FitBatch:
    """refine_field for n fields U (n, R, NL); `start` may give one start per field ((n, P), n Structures,
    labels of shape (n,)) or one for all.

    progress: a tqdm bar (None: only when stderr is a terminal).
    """
    space = resolve_space(preset, n_film, space)
    U = _check_fields(U, preset.grid)
    w = _check_weights(weights, preset.grid)
    starts = space.start_vectors(start, U.shape[0])
    results = []
    for i in progress_bar(range(U.shape[0]), progress, "refine U"):
        problem = SimulatedLeastSquares(space, field_residual(U[i], w), quantity="field", backend=backend,
                                        threads=threads, options=options)
        results.append(fit_once(problem, starts[i], keep_jacobian=keep_jacobian))
    return FitBatch(results)


# ------------------------------------------------------------------ scoring
def exact_recovery(true: Mapping[str, np.ndarray], fitted: Mapping[str, np.ndarray], specs: Iterable[LabelSpec],
                   tolerance: float = 1e-3) -> np.ndarray:
    """(n,) True where every identifiable label is within `tolerance` × its sampled range of the truth.

    Args:
        true, fitted: label name → (n,) values (preset.labels / FitBatch.labels); NaN truths (absent
            layers) count as recovered.
        specs: the preset's label_specs(); labels with identifiable=False (the top layer's c) are skipped.
        tolerance: allowed error as a fraction of each label's sampled range (1e-3: 0.2 mÅ on c).
    """
    ok = None
    for spec in specs:
        if not spec.identifiable:
            continue
        t, f = np.asarray(true[spec.name], np.float64), np.asarray(fitted[spec.name], np.float64)
        close = ~np.isfinite(t) | (np.abs(f - t) <= tolerance * (spec.high - spec.low))
        ok = close if ok is None else ok & close
    if ok is None:
        raise ValueError("no identifiable labels given")
    return ok


# ------------------------------------------------------------------ checks
def resolve_space(preset: PerovskitePreset, n_film: int | None, space: ParameterSpace | None) -> ParameterSpace:
    """`space` checked against preset and n_film, or a new ParameterSpace(preset, n_film)."""
    if not isinstance(preset, PerovskitePreset):
        raise TypeError(f"preset must be a PerovskitePreset, got {type(preset).__name__}")
    if space is None:
        return ParameterSpace(preset, n_film)
    if not isinstance(space, ParameterSpace):
        raise TypeError(f"space must be a ParameterSpace, got {type(space).__name__}")
    if space.preset is not preset:
        raise ValueError(f"space belongs to preset {space.preset.name!r}, not {preset.name!r}")
    if n_film is not None and n_film != space.n_film:
        raise ValueError(f"n_film = {n_film} but the given space has n_film = {space.n_film}")
    return space


def _check_fields(U, grid: Grid) -> np.ndarray:
    array = np.asarray(U)
    if array.ndim != 3 or array.shape[1:] != grid.shape:
        raise ValueError(f"U must have shape (n, R, NL) = (n, {grid.shape[0]}, {grid.shape[1]}) on the preset's "
                         f"grid, got {array.shape}")
    if not np.iscomplexobj(array):
        raise ValueError(f"U must be complex (the film field), got {array.dtype}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"U must be finite, got {np.count_nonzero(~np.isfinite(array))} NaN/inf values")
    return array.astype(np.complex128)


def _check_weights(weights, grid: Grid) -> np.ndarray | None:
    if weights is None:
        return None
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != grid.shape:
        raise ValueError(f"weights must have shape (R, NL) = {grid.shape}, got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be finite and ≥ 0")
    return w


_CONTROLLER: list = []  # the threadpoolctl controller, found once (it scans the loaded libraries)


def single_blas_thread() -> contextlib.AbstractContextManager:
    """A context limiting BLAS to one thread (threadpoolctl), or doing nothing where threadpoolctl is absent."""
    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController  # type: ignore  # optional, may be absent or untyped
        except ImportError:
            return contextlib.nullcontext()
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1, user_api="blas")


def progress_bar(items: Iterable[int], progress: bool | None, name: str) -> Iterable[int]:
    """`items` in a tqdm bar: shown when `progress` is True, hidden when False, tqdm's rule (a terminal) if None."""
    from tqdm import tqdm

    return tqdm(items, desc=name, unit=" fits", file=sys.stderr, dynamic_ncols=True,
                disable=None if progress is None else not progress)
