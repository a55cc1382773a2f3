"""Numba twin of the compiled film-field kernel (docs/kernel.md).

`film_fields(...)` takes exactly the arguments of `mamba_ctr._core.film_fields`
and fills `film_field` (U) and/or `intensity` (I) in place. Work is split over
structures (`prange` over fixed chunks of structures); each structure is
computed entirely by one iteration with per-chunk scratch of one structure's
size, accumulating in float64, so the bits do not depend on the thread count.
The GIL is released while the loop runs.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ._kernel_args import validate_kernel_args

__all__ = ["film_fields", "max_threads"]

#: uniform grids: exact sincos every BLOCK points, recurrence in between
BLOCK = 32
#: structures per prange iteration (fixed; does not depend on the thread count)
CHUNK = 8


def max_threads() -> int:
    """Number of threads the numba kernel uses by default."""
    return int(numba.get_num_threads())


# powers d^k, k < BLOCK, are built as d^k = d^a · d^b with a = highest power of two <= k
_POW_A = np.zeros(BLOCK, np.int64)
_POW_B = np.zeros(BLOCK, np.int64)
for _k in range(2, BLOCK):
    _a = 1
    while 2 * _a <= _k:
        _a *= 2
    _POW_A[_k], _POW_B[_k] = (_a // 2, _a // 2) if _a == _k else (_a, _k - _a)


@numba.njit(cache=True, fastmath=False, nogil=True, boundscheck=False)
def _site_row(zs, qz, step, pow_a, pow_b, pw_re, pw_im, w_re, w_im):
    """w[l] = exp(i qz[l] zs) for all l (recurrence on uniform grids)."""
    NL = qz.shape[0]
    if step > 0.0:
        arg = step * zs
        pw_re[0] = 1.0
        pw_im[0] = 0.0
        pw_re[1] = math.cos(arg)
        pw_im[1] = math.sin(arg)
        for k in range(2, BLOCK):
            a = pow_a[k]
            b = pow_b[k]
            ar = pw_re[a]
            ai = pw_im[a]
            br = pw_re[b]
            bi = pw_im[b]
            pw_re[k] = ar * br - ai * bi
            pw_im[k] = ar * bi + ai * br
        for l0 in range(0, NL, BLOCK):
            arg = qz[l0] * zs
            sr = math.cos(arg)
            si = math.sin(arg)
            m = min(BLOCK, NL - l0)
            for k in range(m):
                w_re[l0 + k] = sr * pw_re[k] - si * pw_im[k]
                w_im[l0 + k] = sr * pw_im[k] + si * pw_re[k]
    else:
        for l in range(NL):
            arg = qz[l] * zs
            w_re[l] = math.cos(arg)
            w_im[l] = math.sin(arg)


@numba.njit(cache=True, fastmath=False, nogil=True, boundscheck=False)
def _one_structure(i, z, weight, entry_site, entry_pair, pair_column, pair_species,
                   ph_re, ph_im, real_phase, rod_pattern, qz, step, pow_a, pow_b,
                   ff_re, ff_im, has_ffim, sub_re, sub_im, rough, has_rough,
                   u_out, write_u, i_out, write_i,
                   G_re, G_im, H_re, H_im, w_re, w_im, pw_re, pw_im):
    E = entry_site.shape[0]
    P = G_re.shape[0]
    NL = qz.shape[0]
    NP = ph_re.shape[0]
    NSP = ff_re.shape[0]
    R = rod_pattern.shape[0]

    # ---- G[pair, l] = sum_e weight * exp(i qz z_site)
    for p in range(P):
        gr = G_re[p]
        gi = G_im[p]
        for l in range(NL):
            gr[l] = 0.0
            gi[l] = 0.0
    e = 0
    while e < E:
        s = entry_site[e]
        e_end = e
        nonzero = False
        while e_end < E and entry_site[e_end] == s:
            if weight[i, e_end] != 0.0:
                nonzero = True
            e_end += 1
        if nonzero:
            _site_row(z[i, s], qz, step, pow_a, pow_b, pw_re, pw_im, w_re, w_im)
            for ee in range(e, e_end):
                wt = weight[i, ee]
                if wt != 0.0:
                    p = entry_pair[ee]
                    gr = G_re[p]
                    gi = G_im[p]
                    for l in range(NL):
                        gr[l] += wt * w_re[l]
                        gi[l] += wt * w_im[l]
        e = e_end

    # ---- H[pat, sp, l] = sum_pairs phase[pat, column] * G[pair, l]
    for q in range(NP * NSP):
        hr = H_re[q]
        hi = H_im[q]
        for l in range(NL):
            hr[l] = 0.0
            hi[l] = 0.0
    for pat in range(NP):
        for p in range(P):
            c = pair_column[p]
            a = ph_re[pat, c]
            b = ph_im[pat, c]
            q = pat * NSP + pair_species[p]
            hr = H_re[q]
            hi = H_im[q]
            gr = G_re[p]
            gi = G_im[p]
            if real_phase:
                for l in range(NL):
                    hr[l] += a * gr[l]
                    hi[l] += a * gi[l]
            else:
                for l in range(NL):
                    hr[l] += a * gr[l] - b * gi[l]
                    hi[l] += a * gi[l] + b * gr[l]

    # ---- U[r, l] = sum_sp ff[sp, r, l] * H[pattern(r), sp, l];  I = |S + U|^2 rough
    acc_re = w_re
    acc_im = w_im
    for r in range(R):
        pat = rod_pattern[r]
        for l in range(NL):
            acc_re[l] = 0.0
            acc_im[l] = 0.0
        for sp in range(NSP):
            q = pat * NSP + sp
            hr = H_re[q]
            hi = H_im[q]
            fr = ff_re[sp, r]
            if has_ffim:
                fi = ff_im[sp, r]
                for l in range(NL):
                    acc_re[l] += fr[l] * hr[l] - fi[l] * hi[l]
                    acc_im[l] += fr[l] * hi[l] + fi[l] * hr[l]
            else:
                for l in range(NL):
                    acc_re[l] += fr[l] * hr[l]
                    acc_im[l] += fr[l] * hi[l]
        if write_u:
            uo = u_out[i, r]
            for l in range(NL):
                uo[2 * l] = acc_re[l]
                uo[2 * l + 1] = acc_im[l]
        if write_i:
            io = i_out[i, r]
            sr = sub_re[r]
            si = sub_im[r]
            if has_rough:
                rg = rough[i]
                for l in range(NL):
                    tr = sr[l] + acc_re[l]
                    ti = si[l] + acc_im[l]
                    io[l] = (tr * tr + ti * ti) * rg[l]
            else:
                for l in range(NL):
                    tr = sr[l] + acc_re[l]
                    ti = si[l] + acc_im[l]
                    io[l] = tr * tr + ti * ti


@numba.njit(parallel=True, cache=True, fastmath=False, nogil=True, boundscheck=False)
def _film_fields_core(z, weight, entry_site, entry_pair, pair_column, pair_species,
                      ph_re, ph_im, real_phase, rod_pattern, qz, step, pow_a, pow_b,
                      ff_re, ff_im, has_ffim, sub_re, sub_im, rough, has_rough,
                      u_out, write_u, i_out, write_i):
    n = z.shape[0]
    P = pair_column.shape[0]
    NL = qz.shape[0]
    NPS = ph_re.shape[0] * ff_re.shape[0]
    n_chunks = (n + CHUNK - 1) // CHUNK
    for ch in numba.prange(n_chunks):
        G_re = np.empty((P, NL))
        G_im = np.empty((P, NL))
        H_re = np.empty((NPS, NL))
        H_im = np.empty((NPS, NL))
        w_re = np.empty(NL)
        w_im = np.empty(NL)
        pw_re = np.empty(BLOCK)
        pw_im = np.empty(BLOCK)
        i_end = min(n, (ch + 1) * CHUNK)
        for i in range(ch * CHUNK, i_end):
            _one_structure(i, z, weight, entry_site, entry_pair, pair_column, pair_species,
                           ph_re, ph_im, real_phase, rod_pattern, qz, step, pow_a, pow_b,
                           ff_re, ff_im, has_ffim, sub_re, sub_im, rough, has_rough,
                           u_out, write_u, i_out, write_i,
                           G_re, G_im, H_re, H_im, w_re, w_im, pw_re, pw_im)


def film_fields(z, weight, entry_site, entry_pair, pair_column, pair_species,
                pattern_phase, rod_pattern, qz, uniform_step, ff_re, ff_im, substrate,
                rough, film_field=None, intensity=None, threads=0) -> None:
    """Fill `film_field` (U) and/or `intensity` (I) in place; see docs/kernel.md."""
    a = validate_kernel_args(z, weight, entry_site, entry_pair, pair_column, pair_species,
                             pattern_phase, rod_pattern, qz, uniform_step, ff_re, ff_im,
                             substrate, rough, film_field, intensity, threads)
    n, R, NL = a.sizes["n"], a.sizes["R"], a.sizes["NL"]
    write_u = film_field is not None
    write_i = intensity is not None
    if n == 0 or R == 0 or NL == 0 or not (write_u or write_i):
        return
    single = (film_field.dtype == np.complex64) if write_u else (intensity.dtype == np.float32)
    real_t = np.float32 if single else np.float64
    u_view = film_field.view(real_t) if write_u else np.zeros((0, 0, 0), real_t)
    i_view = intensity if write_i else np.zeros((0, 0, 0), real_t)

    ph = a.pattern_phase
    ph_re = np.ascontiguousarray(ph.real)
    ph_im = np.ascontiguousarray(ph.imag)
    real_phase = bool(np.all(ph_im == 0.0))
    has_ffim = a.ff_im.size > 0
    ff_im = a.ff_im if has_ffim else np.zeros((0, 0, 0))
    has_rough = a.rough.size > 0
    rough_arr = a.rough if has_rough else np.zeros((0, 0))
    sub_re = np.ascontiguousarray(a.substrate.real)
    sub_im = np.ascontiguousarray(a.substrate.imag)

    previous = numba.get_num_threads()
    if a.threads > 0:
        numba.set_num_threads(min(a.threads, numba.config.NUMBA_NUM_THREADS))
    try:
        _film_fields_core(a.z, a.weight, a.entry_site, a.entry_pair, a.pair_column,
                          a.pair_species, ph_re, ph_im, real_phase, a.rod_pattern, a.qz,
                          a.uniform_step, _POW_A, _POW_B, a.ff_re, ff_im, has_ffim,
                          sub_re, sub_im, rough_arr, has_rough,
                          u_view, write_u, i_view, write_i)
    finally:
        if a.threads > 0:
            numba.set_num_threads(previous)
