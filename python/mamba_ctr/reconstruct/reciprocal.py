"""Reciprocal space of a film stored on rods h, k ≥ 0 at L = m ΔL (m ≥ 0): the one place that extends the rods by
the in-plane mirrors, U(±h, ±k, L) = U(h, k, L), and Friedel's law, U(−h, −k, −L) = U(h, k, L)*, and transforms
between the film field and its 3-D density. Used by `reconstruct.density` (its grid checks, `full_reciprocal`) and
by the COBRA baseline (`FilmTransform`, its "mask" projection).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..physics.grid import Grid


def check_rods(grid: Grid, what: str) -> None:
    """InputError unless the rods are h, k ≥ 0, each (h, k) once (`what` names the caller in the message)."""
    if np.any(grid.h < 0) or np.any(grid.k < 0):
        raise InputError(f"{what} extends rods h, k ≥ 0 by mirror symmetry: the grid must not hold h or k < 0 "
                         f"(got h {grid.h.min()}..{grid.h.max()}, k {grid.k.min()}..{grid.k.max()})")
    if len(set(zip(grid.h.tolist(), grid.k.tolist(), strict=True))) != grid.n_rods:
        raise InputError(f"{what}: the grid lists a rod (h, k) more than once")


def l_indices(grid: Grid, what: str) -> np.ndarray:
    """(NL,) int64 m of L = m ΔL; InputError unless L is evenly spaced at non-negative multiples of its step."""
    step = grid.uniform_L_step
    if step <= 0:
        raise InputError(f"{what} needs an evenly spaced (uniform) L grid, L = m·ΔL, got uneven L values "
                         f"from {grid.L[0]:g} to {grid.L[-1]:g} ({grid.n_L} points)")
    m = np.round(grid.L / step)
    if np.any(np.abs(grid.L / step - m) > 1e-6) or m[0] < 0:
        raise InputError(f"{what} needs L = m·ΔL with integers m ≥ 0 (L to start at 0 or at a multiple of "
                         f"ΔL = {step:g}), got L[0] = {grid.L[0]:g}")
    return m.astype(np.int64)


def mirror_weights(grid: Grid) -> np.ndarray:
    """(R,) how many rods (±h, ±k) each stored rod stands for: 1, 2 or 4."""
    return ((1 + (grid.h > 0)) * (1 + (grid.k > 0))).astype(np.float64)


def extend(values: np.ndarray, h: np.ndarray, k: np.ndarray, m: np.ndarray,
           shape: tuple[int, int, int]) -> np.ndarray:
    """The full reciprocal lattice from the stored rods, periodic and in FFT order.

    Args:
        values: (..., R, M) complex U of rod (h_r, k_r) at L index m_j; the L = 0 entries (if any) must be real.
        h, k: (R,) rod indices ≥ 0; m: (M,) L indices ≥ 0.
        shape: (Nh, Nk, NL) of the lattice; index i stands for the frequency i modulo N.

    Returns:
        (..., Nh, Nk, NL) complex128: `values` at (±h, ±k, m), their conjugates at (∓h, ∓k, −m), 0 elsewhere.
    """
    n_h, n_k, n_l = shape
    full = np.zeros((*values.shape[:-2], n_h, n_k, n_l), dtype=np.complex128)
    for sign_h in (1, -1):
        for sign_k in (1, -1):
            hh = (sign_h * h[:, None]) % n_h
            kk = (sign_k * k[:, None]) % n_k
            full[..., hh, kk, m[None, :]] = values
            full[..., (-hh) % n_h, (-kk) % n_k, (-m[None, :]) % n_l] = np.conj(values)
    return full


class FilmTransform:
    """Inverse and forward Fourier transforms between a film field on rods and its 3-D density.

    The rods (h, k ≥ 0) are mirrored to ±h, ±k and L is Friedel-extended to −L (`extend`), so the density is
    real. Convention U(q) = Σ_r ρ(r) e^{+i q·r}; ρ in arbitrary (consistent) units.

    Args:
        grid: rods with h, k ≥ 0 and L = m ΔL for integers m ≥ 0 on a uniform step (L = 0 may be absent).
        xy_points: in-plane samples per cell edge.
        z_oversampling: z samples = z_oversampling × (2 m_max + 1).
    """

    def __init__(self, grid: Grid, xy_points: int = 16, z_oversampling: int = 2) -> None:
        self.m = l_indices(grid, "the film's 3-D Fourier transform")
        check_rods(grid, "the film's 3-D Fourier transform")
        max_hk = int(max(grid.h.max(), grid.k.max()))
        if xy_points < 2 * max_hk + 2:
            raise InputError(f"xy_points must be ≥ 2·max(h, k) + 2 = {2 * max_hk + 2}, got {xy_points}")
        self.grid = grid
        self.m_all = np.arange(int(self.m.max()) + 1)
        self.n_z = int(z_oversampling * (2 * self.m_all.size - 1))
        self.n_xy = int(xy_points)
        self.period = grid.c_ref / grid.uniform_L_step  # Å, the z period of the discrete transform
        index = np.arange(self.n_z)
        self.z = np.where(index < (self.n_z + 1) // 2, index, index - self.n_z) * (self.period / self.n_z)
        self.xy = np.arange(self.n_xy) / self.n_xy  # fractional in-plane coordinates

    def density(self, field_all: np.ndarray) -> np.ndarray:
        """(Nxy, Nxy, Nz) real ρ from U at every m = 0..m_max of every rod, (R, m_max + 1)."""
        full = extend(field_all, self.grid.h, self.grid.k, self.m_all, (self.n_xy, self.n_xy, self.n_z))
        return np.fft.fftn(full).real  # ρ(r) ∝ Σ_q U(q) e^{−i q·r}

    def field(self, rho: np.ndarray) -> np.ndarray:
        """(R, NL) U at the grid's points: the inverse of `density` on the measured band."""
        F = np.fft.ifftn(rho)
        return F[self.grid.h[:, None] % self.n_xy, self.grid.k[:, None] % self.n_xy, self.m[None, :]]

    def fill(self, field: np.ndarray, origin: float) -> np.ndarray:
        """(R, m_max + 1) U at every m: NaN points and absent m (L = 0, ...) filled along L.

        Gaps are linear interpolations of U e^{−i q_z z₀} (slowly varying; z₀ = `origin`, Å), ends take the
        nearest value; U(L = 0) is made real (Friedel).
        """
        full = np.full((self.grid.n_rods, self.m_all.size), complex(np.nan, np.nan))
        full[:, self.m] = field
        shift = np.exp(-2j * np.pi * self.m_all / self.period * origin)
        shifted = full * shift[None, :]
        for rod, values in enumerate(shifted):
            known = np.isfinite(values)
            if not np.any(known):
                raise InputError(f"rod {rod} has no measured point")
            x = self.m_all[known]
            shifted[rod] = np.interp(self.m_all, x, values[known].real) + 1j * np.interp(self.m_all, x,
                                                                                           values[known].imag)
        out = shifted / shift[None, :]
        out[:, 0] = out[:, 0].real
        return out
