"""A bounded Levenberg–Marquardt solver on the normal equations, for small dense fits started close to the answer.

The refinement from a network's prediction (issue 17 item 4) fits ~50 parameters to a few thousand residuals in
a handful of iterations. scipy's "trf" spends most of such a fit in its own machinery (LSMR on the Jacobian,
reflective bounds, Python bookkeeping). Here each iteration forms JᵀJ (P × P) once, with the columns scaled to
unit norm (as x_scale="jac"), and tries damped steps (JᵀJ + λI) s = −Jᵀr, projected onto the bounds, until one
lowers the cost; λ follows Nielsen's rule. Suited to well-started fits; from a poor start use "trf".
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import OptimizeResult

__all__ = ["levenberg_marquardt"]

_TINY = 1e-300


def levenberg_marquardt(fun: Callable[[np.ndarray], np.ndarray], jac: Callable[[np.ndarray], np.ndarray],
                        x0: np.ndarray, lower: np.ndarray, upper: np.ndarray, *, xtol: float = 1e-10,
                        ftol: float = 1e-10, gtol: float = 1e-10, max_nfev: int | None = None,
                        final_jacobian: bool = True) -> OptimizeResult:
    """Minimise ½‖fun(x)‖² over lower ≤ x ≤ upper from x0 (inside the bounds).

    Args:
        fun: x (P,) → residuals (m,).
        jac: x (P,) → Jacobian (m, P) at x (called after fun at the same x).
        x0, lower, upper: (P,) start and bounds.
        xtol, ftol, gtol: stop when the scaled step is below xtol of the scaled x (status 3), the cost falls by
            less than ftol of itself (2), or the largest scaled projected gradient component is below gtol
            times max(1, ‖r‖) (1).
        max_nfev: residual evaluations at most (None: 100 × P); status 0 when it stops the fit.
        final_jacobian: evaluate the Jacobian at the solution for the result (one more call of jac); else the
            result's jac is None.

    Returns:
        An OptimizeResult with x, cost, fun, jac (at x), grad, status, message, success, nfev and njev, like
        scipy.optimize.least_squares'.
    """
    x = np.clip(np.asarray(x0, dtype=np.float64), lower, upper)
    limit = 100 * x.size if max_nfev is None else max_nfev
    r = fun(x)
    cost, nfev, njev = 0.5 * float(r @ r), 1, 0
    lam, nu, status = 1e-3, 2.0, 0
    J = np.zeros((r.size, x.size))
    g = np.zeros(x.size)
    while status == 0 and nfev < limit:
        J = jac(x)
        njev += 1
        g = J.T @ r
        A = J.T @ J
        d = np.sqrt(np.maximum(np.diag(A), _TINY))
        if np.max(np.abs(_projected(g, x, lower, upper)) / d, initial=0.0) < gtol * max(1.0, np.sqrt(2 * cost)):
            status = 1
            break
        # parameters on a bound that the descent direction would push through it stay there this iteration
        free = ~_blocked(g, x, lower, upper)
        scaled = (A / np.outer(d, d))[np.ix_(free, free)]
        while nfev < limit:
            s = np.zeros_like(x)
            s[free] = np.linalg.solve(scaled + lam * np.eye(scaled.shape[0]), -g[free] / d[free]) / d[free]
            trial = np.clip(x + s, lower, upper)
            step = trial - x
            predicted = -(g @ step + 0.5 * step @ (A @ step))
            r_trial = fun(trial)
            nfev += 1
            cost_trial = 0.5 * float(r_trial @ r_trial)
            rho = (cost - cost_trial) / predicted if predicted > 0 else -1.0
            if rho > 1e-4:  # accepted
                reduction = cost - cost_trial
                x, r, cost = trial, r_trial, cost_trial
                lam *= max(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3)
                nu = 2.0
                if reduction < ftol * max(cost + reduction, _TINY):
                    status = 2
                elif np.linalg.norm(step * d) < xtol * (xtol + np.linalg.norm(x * d)):
                    status = 3
                break
            lam *= nu
            nu *= 2.0
            if np.linalg.norm(step * d) < xtol * (xtol + np.linalg.norm(x * d)):
                status = 3  # no step small enough to lower the cost remains: x is converged
                break
    if status != 1 and final_jacobian:
        J = jac(x)
        njev += 1
        g = J.T @ r
    messages = {0: "the number of function evaluations reached max_nfev",
                1: "gtol termination condition is satisfied", 2: "ftol termination condition is satisfied",
                3: "xtol termination condition is satisfied"}
    return OptimizeResult(x=x, cost=cost, fun=r, jac=J if status == 1 or final_jacobian else None, grad=g,
                          status=status, message=messages[status], success=status > 0, nfev=nfev, njev=njev)


def _blocked(g: np.ndarray, x: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """(P,) bool: x sits on a bound and the descent direction −g points out through it."""
    return ((x <= lower) & (g > 0)) | ((x >= upper) & (g < 0))


def _projected(g: np.ndarray, x: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """The gradient without the components that push x out through a bound it sits on."""
    return np.where(_blocked(g, x, lower, upper), 0.0, g)
