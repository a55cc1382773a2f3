"""Electron density of the film from its field U by inverse Fourier transform (physics.md, "Electron density").

Sign convention. The simulator sums U(q) = Σ_atoms f(q) T(q) e^{+i q·r} (physics.md), so the density is

    ρ(r) = 1/(a b c_ref) Σ_{h,k} ∫ dL U(h, k, L) e^{−i q·r},   q = (2πh/a, 2πk/b, 2πL/c_ref),

with h, k over all signs and L over (−L_max, L_max). The grid holds h, k ≥ 0 and L > 0 only:

* negative h, k come from the in-plane mirror symmetry of the structure, U(−h, k, L) = U(h, k, L) (same for k),
  so Σ_{±h} e^{−2πi h x} = 2 cos(2π h x) for h > 0;
* negative L from Friedel's law U(−q) = U(q)* (real form factors) and the mirrors: U(h, k, −L) = U(h, k, L)*,
  so the L integral is ΔL [U(0) + 2 Re Σ_{i≥1} U(L_i) e^{−2πi L_i z / c_ref}]: a real density;
* L = 0 is not on the paper grid: U(0) (real) only adds a constant to the density. It is either extrapolated
  from the smallest L (`DensitySettings.l0`; poor for thick films, whose U varies on a scale ΔL ≈ c / thickness
  near L = 0: 10–100 % of U(0) for 12–24 layers) or, with l0 = "vacuum", chosen so that the density averages to
  zero over a stretch of z known to be empty (above the film, below the next period's image of it): exact up to
  the tails of the peaks, which the Gaussian window keeps short.

The integral over L becomes a real FFT (`numpy.fft.irfft` of the conjugated one-sided spectrum) on a z axis of
period c_ref / ΔL (156.2 Å on the paper grid; the film must be thinner). Zero padding in L by `padding`
samples that period `padding` times more finely (interpolation; no new resolution). A Gaussian window
exp(−L² / 2σ²) damps the truncation ringing at L_max at the cost of resolution.

Two ways to read the atom columns (`DensitySettings.in_plane`):

* ``"fourier"``: the band-limited density ρ(x_c, y_c, z) itself at the column, e/Å³. With rods up to h, k = 3
  the in-plane resolution (≈ a/6) is coarse, so every column also sees the atoms of its neighbours (the A column
  sees the equatorial O with weight −7/49 of its own, the O columns see the A atoms with weight −7/49): peaks
  are pulled by up to 0.05 Å.
* ``"sites"`` (default): the site-resolved column density. For the perovskite columns the in-plane phases are
  exactly ±1 and follow the parities of h and k (A → 1, B and O_ap → (−1)^{h+k}, O_x → (−1)^h, O_y → (−1)^k), so
  at each L a weighted least-squares fit over the rods splits U into one 1-D signal per column, with each rod's
  form factor brought to the 00 rod at the same L by the column's form-factor shape F(q_rod) / F(q_z). The
  result is the column's projected density λ(z) in electrons per Å along z (a peak integrates to the atom's
  electrons, e.g. 36 for Sr²⁺), free of in-plane cross-talk; exact when every atom of a column has the column's
  form-factor shape (O_x, O_y), nearly so for the mixed columns (Sr/La; Ti, Al and O_ap).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import InputError
from ..physics.form_factors import Scatterer
from ..physics.grid import Grid
from ..physics.perovskite import PEROVSKITE_COLUMNS, Column, paper_scatterers
from .reciprocal import check_rods, extend, l_indices, mirror_weights

L0_METHODS = ("quadratic", "linear", "nearest", "zero", "vacuum")


@dataclass(frozen=True)
class DensitySettings:
    """How U becomes a density.

    Attributes:
        padding: zero-padding factor in L (≥ 1): the z step is c_ref / (ΔL · padding · 2(M+1)), 0.0405 Å on the
            paper grid at the default 8.
        window: σ of the Gaussian window exp(−L² / 2σ²) in reciprocal lattice units of L (None = no window).
            2.0 suppresses the ringing that otherwise shifts peaks by ~0.01 Å (a point atom becomes a Gaussian
            of σ_z = c_ref / (2π σ) ≈ 0.31 Å, on top of its form factor and thermal width).
        l0: how U at L = 0 is obtained: extrapolated from the smallest L, "quadratic" (3 points), "linear"
            (2 points), "nearest" (the first point), "zero" (left out), or "vacuum" (the constant that makes the
            mean density over `vacuum` zero). Only a real value is used (U(0) is real).
        vacuum: (start, stop) z interval, Å, taken modulo the period c_ref/ΔL, where the film has no atoms
            (needed by l0 = "vacuum"; the extraction fills it in from the preset).
        in_plane: "sites" (site-resolved column densities, e/Å) or "fourier" (ρ at the column, e/Å³).
        z_min: lowest z of the output, Å (layer 0's A atom is at z = 0).
        z_max: highest z of the output, Å; None = one full period c_ref/ΔL above z_min.
    """

    padding: int = 8
    window: float | None = 2.0
    l0: Literal["quadratic", "linear", "nearest", "zero", "vacuum"] = "linear"
    vacuum: tuple[float, float] | None = None
    in_plane: Literal["sites", "fourier"] = "sites"
    z_min: float = -4.0
    z_max: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.padding, bool) or not isinstance(self.padding, (int, np.integer)) or self.padding < 1:
            raise ValueError(f"padding must be an integer ≥ 1, got {self.padding!r}")
        if self.window is not None and not (np.isfinite(self.window) and self.window > 0):
            raise ValueError(f"window must be None or a positive width in L units, got {self.window!r}")
        if self.l0 not in L0_METHODS:
            raise ValueError(f"l0 must be one of {', '.join(L0_METHODS)}, got {self.l0!r}")
        if self.in_plane not in ("sites", "fourier"):
            raise ValueError(f"in_plane must be 'sites' or 'fourier', got {self.in_plane!r}")
        if self.vacuum is not None and not (len(self.vacuum) == 2 and np.all(np.isfinite(self.vacuum))
                                            and self.vacuum[0] < self.vacuum[1]):
            raise ValueError(f"vacuum must be None or a (start, stop) interval in Å, got {self.vacuum!r}")
        if not np.isfinite(self.z_min):
            raise ValueError(f"z_min must be a finite height in Å, got {self.z_min!r}")
        if self.z_max is not None and not (np.isfinite(self.z_max) and self.z_max > self.z_min):
            raise ValueError(f"z_max must be None or a height above z_min = {self.z_min} Å, got {self.z_max!r}")


@dataclass(frozen=True, eq=False)
class ColumnDensity:
    """Densities along atom columns.

    Attributes:
        z: (nz,) heights, Å, evenly spaced.
        rho: (n, C, nz) densities along the C columns: e/Å ("sites") or e/Å³ ("fourier").
        columns: the C columns, in the order of axis 1.
        unit: "e/Å" or "e/Å³".
    """

    z: np.ndarray
    rho: np.ndarray
    columns: tuple[Column, ...]
    unit: str

    @property
    def dz(self) -> float:
        """Sampling step of z, Å."""
        return float(self.z[1] - self.z[0])


# ------------------------------------------------------------------ checks
def check_film_field(U, grid: Grid) -> np.ndarray:
    """U as a complex (n, R, NL) array for `grid` (a single (R, NL) field becomes n = 1); ValueError if not."""
    if not isinstance(grid, Grid):
        raise TypeError(f"grid must be a mamba_ctr Grid, got {type(grid).__name__}")
    array = np.asarray(U)
    if not (np.issubdtype(array.dtype, np.complexfloating) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"U must be a complex array of film fields, got dtype {array.dtype}")
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[1:] != grid.shape:
        raise ValueError(f"U must have shape (n, {grid.n_rods}, {grid.n_L}) for this grid, got {np.shape(U)}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"U must be finite, got {np.count_nonzero(~np.isfinite(array))} NaN/inf values")
    return array.astype(np.complex128, copy=False)


def _l_index_offset(grid: Grid) -> int:
    """0 if the grid's L start at 0, 1 if at ΔL (L_i = i ΔL); InputError otherwise."""
    first = int(l_indices(grid, "the density")[0])
    if first not in (0, 1):
        raise InputError(f"the density needs L to start at 0 or at ΔL = {grid.uniform_L_step:g}, "
                         f"got L[0] = {grid.L[0]:g}")
    return first


def _inplane_cosines(grid: Grid, x: np.ndarray, y: float) -> np.ndarray:
    """(nx, R) Σ over the mirror images of e^{−2πi(hx + ky)} = w cos(2πhx) cos(2πky)."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    return mirror_weights(grid) * np.cos(2 * np.pi * np.outer(x, grid.h)) * np.cos(2 * np.pi * grid.k * y)


# --------------------------------------------------------- the transforms
def extend_to_l0(spectrum: np.ndarray, method: str) -> np.ndarray:
    """(…, M) complex values at L_i = i ΔL, i = 1..M → (…, M+1) with the real L = 0 value in front.

    Extrapolation by the polynomial through the first 3 ("quadratic") or 2 ("linear") points, the first point
    ("nearest") or 0 ("zero", and "vacuum", whose constant is set after the transform); the imaginary part is
    dropped (U(0) is real by Friedel's law).
    """
    if method not in L0_METHODS:
        raise ValueError(f"method must be one of {', '.join(L0_METHODS)}, got {method!r}")
    needed = {"quadratic": 3, "linear": 2, "nearest": 1, "zero": 0, "vacuum": 0}[method]
    if spectrum.shape[-1] < needed:
        raise ValueError(f"{method} extrapolation to L = 0 needs {needed} L points, got {spectrum.shape[-1]}")
    s = spectrum
    if method == "quadratic":
        at_zero = 3 * s[..., 0] - 3 * s[..., 1] + s[..., 2]
    elif method == "linear":
        at_zero = 2 * s[..., 0] - s[..., 1]
    elif method == "nearest":
        at_zero = s[..., 0]
    else:
        at_zero = np.zeros(s.shape[:-1])
    return np.concatenate([np.real(at_zero)[..., None].astype(s.dtype), s], axis=-1)


def _one_sided(spectrum: np.ndarray, grid: Grid, settings: DensitySettings) -> np.ndarray:
    """The grid's L values (…, NL) → the windowed spectrum at L = 0, ΔL, …, L_max (…, M+1)."""
    if _l_index_offset(grid) == 1:
        spectrum = extend_to_l0(spectrum, settings.l0)
    else:
        spectrum = spectrum.copy()
        spectrum[..., 0] = 0.0 if settings.l0 == "vacuum" else spectrum[..., 0].real
    if settings.window is not None:
        L = np.arange(spectrum.shape[-1]) * grid.uniform_L_step
        spectrum = spectrum * np.exp(-0.5 * (L / settings.window) ** 2)
    return spectrum


def z_axis(grid: Grid, settings: DensitySettings | None = None) -> np.ndarray:
    """(nz,) the heights, Å, at which `column_density` and `density_slices` sample ρ."""
    settings = settings or DensitySettings()
    n_fft, dz = _fft_size(grid, settings)
    period = n_fft * dz
    z_max = settings.z_min + period - dz if settings.z_max is None else settings.z_max
    if z_max - settings.z_min >= period:
        raise ValueError(f"z range {settings.z_min}..{z_max} Å exceeds the period c_ref/ΔL = {period:.2f} Å")
    first = int(np.ceil(settings.z_min / dz - 1e-9))
    last = int(np.floor(z_max / dz + 1e-9))
    return np.arange(first, last + 1) * dz


def _fft_size(grid: Grid, settings: DensitySettings) -> tuple[int, float]:
    """FFT length and z step (Å) for the grid's L range and the padding factor."""
    n_points = grid.n_L + _l_index_offset(grid)  # M + 1 values L = 0..L_max
    n_fft = 2 * n_points * settings.padding
    return n_fft, grid.c_ref / (grid.uniform_L_step * n_fft)


def _to_z(one_sided: np.ndarray, grid: Grid, settings: DensitySettings, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """ΔL [a_0 + 2 Re Σ a_i e^{−2πi L_i z / c_ref}] · scale on the output z axis: (…, nz)."""
    n_fft, dz = _fft_size(grid, settings)
    z = z_axis(grid, settings)
    # irfft sums a_k e^{+2πi k m / n} / n; the conjugate gives the e^{−iq_z z} of the inverse transform
    full = np.fft.irfft(np.conj(one_sided), n=n_fft, axis=-1)
    full *= n_fft * grid.uniform_L_step * scale
    if settings.l0 == "vacuum":
        full -= full[..., _vacuum_index(settings, n_fft, dz)].mean(axis=-1, keepdims=True)
    index = np.round(z / dz).astype(np.int64) % n_fft
    return z, full[..., index]


def _vacuum_index(settings: DensitySettings, n_fft: int, dz: float) -> np.ndarray:
    """Sample indices (within one period) of the empty stretch `settings.vacuum`."""
    if settings.vacuum is None:
        raise ValueError('l0 = "vacuum" needs DensitySettings.vacuum, the (start, stop) z interval known to be empty')
    start, stop = settings.vacuum
    first, last = int(np.ceil(start / dz)), int(np.floor(stop / dz))
    if last - first + 1 < 2 or last - first + 1 >= n_fft:
        raise ValueError(f"the vacuum interval {start}..{stop} Å must hold at least 2 samples and be shorter than "
                         f"the period {n_fft * dz:.2f} Å")
    return np.arange(first, last + 1) % n_fft


def _column_shapes(grid: Grid, columns: Sequence[Column], scatterers: Mapping[str, Scatterer]) -> np.ndarray:
    """(C, R, NL) F(q_rod) / F(q_z) averaged over each column's species: the rod's form factor relative to 00."""
    q, qz = grid.q, grid.qz
    shapes = []
    for column in columns:
        ratios = []
        for name in column.species:
            if name not in scatterers:
                raise ValueError(f"column {column.name!r} holds {name!r}, not among the scatterers "
                                 f"({', '.join(sorted(scatterers))})")
            on_rod, on_00 = np.real(scatterers[name].factor(q)), np.real(scatterers[name].factor(qz))
            if np.any(np.abs(on_00) < 1e-6):
                raise ValueError(f"the form factor of {name!r} vanishes on the grid: no column shape")
            ratios.append(on_rod / on_00[None, :])
        shapes.append(np.mean(ratios, axis=0))
    return np.stack(shapes)


def _site_separation(grid: Grid, columns: Sequence[Column], scatterers: Mapping[str, Scatterer]) -> np.ndarray:
    """(NL, C, R) per-L weighted least-squares operators taking the rods to the columns' 00-rod signals."""
    signs = (np.cos(2 * np.pi * np.outer([c.x for c in columns], grid.h))
             * np.cos(2 * np.pi * np.outer([c.y for c in columns], grid.k)))  # (C, R) in-plane phases
    if not np.allclose(np.abs(signs), 1.0):
        raise ValueError("site-resolved columns need columns at x, y ∈ {0, ½} (in-plane phases ±1)")
    design = np.einsum("cr,crl->lrc", signs, _column_shapes(grid, columns, scatterers))  # (NL, R, C)
    if np.linalg.matrix_rank(design[0]) < len(columns):
        raise ValueError("the grid's rods cannot separate these columns (need every parity class of h, k)")
    root_w = np.sqrt(mirror_weights(grid))[None, :, None]
    operators = np.linalg.pinv(design * root_w) * root_w.transpose(0, 2, 1)  # (NL, C, R)
    return operators


def column_spectra(U, grid: Grid, settings: DensitySettings | None = None, *,
                   columns: Sequence[Column] = PEROVSKITE_COLUMNS,
                   scatterers: Mapping[str, Scatterer] | None = None) -> np.ndarray:
    """(n, C, NL) complex: the L-dependent signal whose transform along z is each column's density.

    "fourier": Σ_rods w cos(2πh x_c) cos(2πk y_c) U (the mirror-extended in-plane sum at the column);
    "sites": the per-L least-squares split into column signals (see the module docstring).
    """
    settings = settings or DensitySettings()
    U = check_film_field(U, grid)
    check_rods(grid, "the density")
    if settings.in_plane == "fourier":
        weights = np.stack([_inplane_cosines(grid, np.array([c.x]), c.y)[0] for c in columns])  # (C, R)
        return np.einsum("cr,nrl->ncl", weights, U)
    operators = _site_separation(grid, columns, scatterers if scatterers is not None else paper_scatterers())
    return np.einsum("lcr,nrl->ncl", operators, U)


def column_density(U, grid: Grid, settings: DensitySettings | None = None, *,
                   columns: Sequence[Column] = PEROVSKITE_COLUMNS,
                   scatterers: Mapping[str, Scatterer] | None = None) -> ColumnDensity:
    """Density along the atom columns of n film fields.

    Args:
        U: (n, R, NL) or (R, NL) complex film fields on `grid`.
        grid: rods h, k ≥ 0 (each once) at L_i = i ΔL (i from 1, or from 0).
        settings: padding, window, L = 0 extrapolation, in-plane mode, z range.
        columns: the columns to read (default: A, B+O_ap, O_x, O_y of the perovskite cell).
        scatterers: name → Scatterer for the columns' species ("sites" mode; default the paper's).

    Returns:
        ColumnDensity with z (nz,) in Å and rho (n, C, nz): e/Å ("sites") or e/Å³ ("fourier").
    """
    settings = settings or DensitySettings()
    spectra = column_spectra(U, grid, settings, columns=columns, scatterers=scatterers)
    if settings.in_plane == "fourier":
        scale, unit = 1.0 / (grid.a * grid.b * grid.c_ref), "e/Å³"
    else:
        scale, unit = 1.0 / grid.c_ref, "e/Å"
    z, rho = _to_z(_one_sided(spectra, grid, settings), grid, settings, scale)
    return ColumnDensity(z=z, rho=rho, columns=tuple(columns), unit=unit)


def density_slices(U, grid: Grid, settings: DensitySettings | None = None, *,
                   y: Sequence[float] = (0.0, 0.5), x: np.ndarray | None = None,
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ρ(x, y, z) on the planes y = const (the paper's Fig. 2a slices), always the plain Fourier density.

    Args:
        U: (n, R, NL) or (R, NL) complex film fields on `grid`.
        grid, settings: as for `column_density` (`in_plane` is ignored).
        y: fractional in-plane y of each slice.
        x: fractional x positions (default 101 points from −½ to ½).

    Returns:
        x (nx,), z (nz,) in Å, rho (n, len(y), nx, nz) in e/Å³.
    """
    settings = settings or DensitySettings()
    U = check_film_field(U, grid)
    check_rods(grid, "the density")
    x = np.linspace(-0.5, 0.5, 101) if x is None else np.asarray(x, dtype=np.float64).reshape(-1)
    ys = np.asarray(y, dtype=np.float64).reshape(-1)
    if x.size == 0 or ys.size == 0 or not (np.all(np.isfinite(x)) and np.all(np.isfinite(ys))):
        raise ValueError("x and y must be non-empty lists of finite fractional coordinates")
    weights = np.stack([_inplane_cosines(grid, x, float(y_s)) for y_s in ys])  # (Y, nx, R)
    spectra = np.einsum("yxr,nrl->nyxl", weights, U)
    z, rho = _to_z(_one_sided(spectra, grid, settings), grid, settings, 1.0 / (grid.a * grid.b * grid.c_ref))
    return x, z, rho


def full_reciprocal(U, grid: Grid, l0: str = "quadratic") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """U on the full reciprocal grid −H..H × −K..K × −M..M, by mirror symmetry and Friedel's law (`reciprocal.extend`).

    The rods of `grid` must fill the rectangle 0..H × 0..K. Meant for checks (the inverse FFT of this array is
    real) and for custom transforms.

    Returns:
        h (2H+1,), k (2K+1,), L (2M+1,), U_full (n, 2K+1, 2H+1, 2M+1) complex, index [n, k, h, L].
    """
    U = check_film_field(U, grid)
    check_rods(grid, "the density")
    H, K = int(grid.h.max()), int(grid.k.max())
    if grid.n_rods != (H + 1) * (K + 1):
        raise InputError(f"the rods must fill 0..{H} × 0..{K}, got {grid.n_rods} rods")
    one_sided = _one_sided(U, grid, DensitySettings(window=None, l0=l0))  # type: ignore[arg-type]
    M = one_sided.shape[-1] - 1
    periodic = extend(one_sided, grid.h, grid.k, np.arange(M + 1), (2 * H + 1, 2 * K + 1, 2 * M + 1))
    full = np.fft.fftshift(periodic, axes=(1, 2, 3)).transpose(0, 2, 1, 3)  # sorted, [n, k, h, L]
    L = np.arange(-M, M + 1) * grid.uniform_L_step
    return np.arange(-H, H + 1), np.arange(-K, K + 1), L, np.ascontiguousarray(full)
