"""Numba twin of the compiled film-field kernel (docs/kernel.md).

`Plan(*tables)` takes the tables of `_kernel_args.PlanTables`, as `mamba_ctr._core.Plan`
does, and `Plan.run(z, weight, rough, film_field, intensity, threads)` fills `film_field` (U)
and/or `intensity` (I) in place. Work is split over
structures (`prange` over fixed chunks of structures); each structure is
computed entirely by one iteration with per-chunk scratch of one structure's
size, accumulating in float64, so the bits do not depend on the thread count
(nor on the other structures of the batch). The GIL is released while the
loop runs.

Site phases exp(i qz z): inside the evenly spaced runs of qz by recurrence, w[l0 + k] =
seed(l0) * d^k, re-seeded at every segment start (`_kernel_args.l_segments`: blocks of
BLOCK = 32 points cut where a run starts; an irregular point is its own segment). The
seeds (and whole rows on grids without runs) come from a branch-free, vectorisable
fdlibm sincos (<= 1 ulp, like libm) when every |qz z| of the structure is below 2^19,
else from libm. Besides G, H and one row, each chunk holds the seeds of one structure,
S * (NSEG + 1) values.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

from ._kernel_args import BLOCK, MOMENT_GROUP, PlanTables, check_call, check_moments, check_tables, l_segments

__all__ = ["Plan", "max_threads"]

#: structures per prange iteration (fixed; does not depend on the thread count)
CHUNK = 8


def max_threads() -> int:
    """Number of threads the numba kernel uses by default."""
    return int(numba.get_num_threads())


@numba.njit(cache=True, fastmath=False, nogil=True, boundscheck=False, inline="always")
def _block_product(sr, si, pw_re, pw_im, w_re, w_im, l0, m):
    for k in range(m):
        w_re[l0 + k] = sr * pw_re[k] - si * pw_im[k]
        w_im[l0 + k] = sr * pw_im[k] + si * pw_re[k]


#: |argument| bound of the vectorisable sincos (Cody-Waite reduction exact for n < 2^20)
SINCOS_LIMIT = 2.0 ** 19


@numba.njit(cache=True, fastmath=False, nogil=True, boundscheck=False)
def _sincos_scaled(q, zs, s_out, c_out):
    """s_out[j], c_out[j] = sin, cos(q[j] * zs) for |q[j] zs| <= SINCOS_LIMIT.

    Branch-free (vectorisable) fdlibm/musl algorithm: two-step Cody-Waite
    reduction by pi/2 (33+33+53 bits, good to ~118 bits), the __sin/__cos
    minimax kernels, quadrant by selects. Error <= 1 ulp, like libm.
    """
    for j in range(q.shape[0]):
        x = q[j] * zs
        nf = math.floor(x * 6.36619772367581382433e-01 + 0.5)
        t = x - nf * 1.57079632673412561417e+00
        w = nf * 6.07710050630396597660e-11
        r = t - w
        w = nf * 2.02226624879595063154e-21 - ((t - r) - w)
        y0 = r - w
        y1 = (r - y0) - w
        z = y0 * y0
        zz = z * z
        rs = (8.33333333332248946124e-03 + z * (-1.98412698298579493134e-04 + z * 2.75573137070700676789e-06)
              + z * zz * (-2.50507602534068634195e-08 + z * 1.58969099521155010221e-10))
        v = z * y0
        sn = y0 - ((z * (0.5 * y1 - v * rs) - y1) - v * -1.66666666666666324348e-01)
        rc = (z * (4.16666666666666019037e-02 + z * (-1.38888888888741095749e-03 + z * 2.48015872894767294178e-05))
              + zz * zz * (-2.75573143513906633035e-07 + z * (2.08757232129817482790e-09
                                                            + z * -1.13596475577881948265e-11)))
        hz = 0.5 * z
        w2 = 1.0 - hz
        cs = w2 + (((1.0 - w2) - hz) + (z * rc - y0 * y1))
        qd = np.int64(nf) & 3
        a = cs if (qd & 1) else sn
        b = sn if (qd & 1) else cs
        s_out[j] = -a if (qd & 2) else a
        c_out[j] = -b if ((qd + 1) & 2) else b


@numba.njit(cache=True, fastmath=False, nogil=True, boundscheck=False)
def _site_row(zs, qz, step, seg_l, seg_len, fast, sd_s, sd_c, off, pw_re, pw_im, w_re, w_im):
    """w[l] = exp(i qz[l] zs) for all l (recurrence inside the segments when step > 0).

    step > 0: w[l0 + k] = exp(i qz[l0] zs) * d^k with d = exp(i step zs) in the
    segment of seg_len points starting at l0 = seg_l[g], an exact sincos seed per
    segment; the powers d^k (k < BLOCK) are built by doubling (d^(h+k) = d^h d^k),
    so the dependency chain is short and every step is a vectorisable loop. With
    `fast`, the seeds come precomputed in sd_s/sd_c[off:] ([d, segment 0, segment 1,
    ...]) and rows without segments use the vectorised sincos; otherwise libm sin/cos.
    """
    NL = qz.shape[0]
    if step > 0.0:
        if fast:
            cr = sd_c[off]
            ci = sd_s[off]
        else:
            arg = step * zs
            cr = math.cos(arg)
            ci = math.sin(arg)
        pw_re[0] = 1.0
        pw_im[0] = 0.0
        pw_re[1] = cr
        pw_im[1] = ci
        h = 2
        while h < BLOCK:
            cr, ci = cr * cr - ci * ci, 2.0 * cr * ci     # d^h
            for k in range(h):
                ar = pw_re[k]
                ai = pw_im[k]
                pw_re[h + k] = ar * cr - ai * ci
                pw_im[h + k] = ar * ci + ai * cr
            h *= 2
        for g in range(seg_l.shape[0]):
            l0 = seg_l[g]
            if fast:
                sr = sd_c[off + g + 1]
                si = sd_s[off + g + 1]
            else:
                arg = qz[l0] * zs
                sr = math.cos(arg)
                si = math.sin(arg)
            _block_product(sr, si, pw_re, pw_im, w_re, w_im, l0, seg_len[g])
    elif fast:
        _sincos_scaled(qz, zs, w_im, w_re)
    else:
        for l in range(NL):
            arg = qz[l] * zs
            w_re[l] = math.cos(arg)
            w_im[l] = math.sin(arg)


@numba.njit(cache=True, fastmath=False, nogil=True, boundscheck=False)
def _one_structure(i, z, weight, entry_site, entry_pair, pair_column, pair_species,
                   ph_re, ph_im, real_phase, sp_off, sp_pairs, rod_pattern, qz, step, seg_l, seg_len,
                   seed_q, qz_max,
                   ff_re, ff_im, has_ffim, sub_re, sub_im, rough, has_rough,
                   u_out, write_u, i_out, write_i,
                   G_re, G_im, H_re, H_im, w_re, w_im, pw_re, pw_im, sd_arg, sd_s, sd_c):
    E = entry_site.shape[0]
    S = z.shape[1]
    NB = seed_q.shape[0]
    # vectorised sincos when every argument of this structure is in range
    z_max = 0.0
    for s in range(S):
        z_max = max(z_max, abs(z[i, s]))
    fast = z_max * qz_max <= SINCOS_LIMIT
    if fast and step > 0.0:
        for s in range(S):
            zs = z[i, s]
            for b in range(NB):
                sd_arg[s * NB + b] = seed_q[b] * zs
        _sincos_scaled(sd_arg, 1.0, sd_s, sd_c)
    P = G_re.shape[0]
    NL = qz.shape[0]
    NP = ph_re.shape[0]
    NSP = ff_re.shape[0]
    R = rod_pattern.shape[0]

    # ---- G[pair, l] = sum_e weight * exp(i qz z_site)
    for p in range(P):
        for l in range(NL):
            G_re[p, l] = 0.0
            G_im[p, l] = 0.0
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
            _site_row(z[i, s], qz, step, seg_l, seg_len, fast, sd_s, sd_c, s * NB, pw_re, pw_im, w_re, w_im)
            for ee in range(e, e_end):
                wt = weight[i, ee]
                if wt != 0.0:
                    p = entry_pair[ee]
                    for l in range(NL):
                        G_re[p, l] += wt * w_re[l]
                        G_im[p, l] += wt * w_im[l]
        e = e_end

    # ---- H[pat, sp, l] = sum_pairs phase[pat, column] * G[pair, l]: the pairs of each species (sp_pairs,
    # sp_off) two per pass over l, so that each pass reads and writes the H row once for two pairs
    for pat in range(NP):
        for sp in range(NSP):
            q = pat * NSP + sp
            for l in range(NL):
                H_re[q, l] = 0.0
                H_im[q, l] = 0.0
            t = sp_off[sp]
            t_end = sp_off[sp + 1]
            while t < t_end:
                p1 = sp_pairs[t]
                p2 = sp_pairs[t + 1] if t + 1 < t_end else p1
                a1 = ph_re[pat, pair_column[p1]]
                b1 = ph_im[pat, pair_column[p1]]
                a2 = ph_re[pat, pair_column[p2]] if t + 1 < t_end else 0.0
                b2 = ph_im[pat, pair_column[p2]] if t + 1 < t_end else 0.0
                if real_phase:
                    for l in range(NL):
                        H_re[q, l] += a1 * G_re[p1, l] + a2 * G_re[p2, l]
                        H_im[q, l] += a1 * G_im[p1, l] + a2 * G_im[p2, l]
                else:
                    for l in range(NL):
                        H_re[q, l] += (a1 * G_re[p1, l] - b1 * G_im[p1, l]) + (a2 * G_re[p2, l] - b2 * G_im[p2, l])
                        H_im[q, l] += (a1 * G_im[p1, l] + b1 * G_re[p1, l]) + (a2 * G_im[p2, l] + b2 * G_re[p2, l])
                t += 2

    # ---- U[r, l] = sum_sp ff[sp, r, l] * H[pattern(r), sp, l];  I = |S + U|^2 rough
    # (species taken two per pass over l; the additions keep the order sp = 0, 1, 2, ...)
    acc_re = w_re
    acc_im = w_im
    for r in range(R):
        pat = rod_pattern[r]
        q0 = pat * NSP
        if NSP == 0:
            for l in range(NL):
                acc_re[l] = 0.0
                acc_im[l] = 0.0
        elif has_ffim:
            for l in range(NL):
                acc_re[l] = 0.0 + (ff_re[0, r, l] * H_re[q0, l] - ff_im[0, r, l] * H_im[q0, l])
                acc_im[l] = 0.0 + (ff_re[0, r, l] * H_im[q0, l] + ff_im[0, r, l] * H_re[q0, l])
            sp = 1
            while sp + 1 < NSP:
                qa = q0 + sp
                qb = qa + 1
                for l in range(NL):
                    tr = acc_re[l] + (ff_re[sp, r, l] * H_re[qa, l] - ff_im[sp, r, l] * H_im[qa, l])
                    ti = acc_im[l] + (ff_re[sp, r, l] * H_im[qa, l] + ff_im[sp, r, l] * H_re[qa, l])
                    acc_re[l] = tr + (ff_re[sp + 1, r, l] * H_re[qb, l] - ff_im[sp + 1, r, l] * H_im[qb, l])
                    acc_im[l] = ti + (ff_re[sp + 1, r, l] * H_im[qb, l] + ff_im[sp + 1, r, l] * H_re[qb, l])
                sp += 2
            if sp < NSP:
                qa = q0 + sp
                for l in range(NL):
                    acc_re[l] += ff_re[sp, r, l] * H_re[qa, l] - ff_im[sp, r, l] * H_im[qa, l]
                    acc_im[l] += ff_re[sp, r, l] * H_im[qa, l] + ff_im[sp, r, l] * H_re[qa, l]
        else:
            for l in range(NL):
                acc_re[l] = 0.0 + ff_re[0, r, l] * H_re[q0, l]
                acc_im[l] = 0.0 + ff_re[0, r, l] * H_im[q0, l]
            sp = 1
            while sp + 1 < NSP:
                qa = q0 + sp
                qb = qa + 1
                for l in range(NL):
                    tr = acc_re[l] + ff_re[sp, r, l] * H_re[qa, l]
                    ti = acc_im[l] + ff_re[sp, r, l] * H_im[qa, l]
                    acc_re[l] = tr + ff_re[sp + 1, r, l] * H_re[qb, l]
                    acc_im[l] = ti + ff_re[sp + 1, r, l] * H_im[qb, l]
                sp += 2
            if sp < NSP:
                qa = q0 + sp
                for l in range(NL):
                    acc_re[l] += ff_re[sp, r, l] * H_re[qa, l]
                    acc_im[l] += ff_re[sp, r, l] * H_im[qa, l]
        if write_u:
            for l in range(NL):
                u_out[i, r, 2 * l] = acc_re[l]
                u_out[i, r, 2 * l + 1] = acc_im[l]
        if write_i:
            if has_rough:
                for l in range(NL):
                    tr = sub_re[r, l] + acc_re[l]
                    ti = sub_im[r, l] + acc_im[l]
                    u = tr * tr + ti * ti
                    i_out[i, r, l] = u * rough[i, l]
            else:
                for l in range(NL):
                    tr = sub_re[r, l] + acc_re[l]
                    ti = sub_im[r, l] + acc_im[l]
                    i_out[i, r, l] = tr * tr + ti * ti


@numba.njit(parallel=True, cache=True, fastmath=False, nogil=True, boundscheck=False)
def _film_fields_core(z, weight, entry_site, entry_pair, pair_column, pair_species,
                      ph_re, ph_im, real_phase, sp_off, sp_pairs, rod_pattern, qz, step, seg_l, seg_len,
                      seed_q, qz_max,
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
        sd_arg = np.empty(z.shape[1] * seed_q.shape[0])
        sd_s = np.empty(z.shape[1] * seed_q.shape[0])
        sd_c = np.empty(z.shape[1] * seed_q.shape[0])
        i_end = min(n, (ch + 1) * CHUNK)
        for i in range(ch * CHUNK, i_end):
            _one_structure(i, z, weight, entry_site, entry_pair, pair_column, pair_species,
                           ph_re, ph_im, real_phase, sp_off, sp_pairs, rod_pattern, qz, step, seg_l, seg_len,
                   seed_q, qz_max,
                           ff_re, ff_im, has_ffim, sub_re, sub_im, rough, has_rough,
                           u_out, write_u, i_out, write_i,
                           G_re, G_im, H_re, H_im, w_re, w_im, pw_re, pw_im,
                           sd_arg, sd_s, sd_c)


@numba.njit(parallel=True, cache=True, fastmath=False, nogil=True, boundscheck=False)
def _group_moments(i_out, u_out, bragg, single, moments):
    """moments[g] (6, R, NL): Welford means and M2 of X = ln I (0 at Bragg points; in the outputs' precision),
    Re U, Im U over the structures of group g (MOMENT_GROUP of them, in index order; one group per iteration,
    so the bits do not depend on the thread count). u_out: U viewed as reals (n, R, 2 NL)."""
    n, R, NL = i_out.shape
    for g in numba.prange(moments.shape[0]):
        m = moments[g]
        m[:] = 0.0
        lo = g * MOMENT_GROUP
        for i in range(lo, min(n, lo + MOMENT_GROUP)):
            inv = 1.0 / (i - lo + 1)
            for r in range(R):
                for l in range(NL):
                    x = 0.0
                    if not bragg[l]:
                        x = math.log(np.float64(i_out[i, r, l]))
                        if single:
                            x = np.float64(np.float32(x))
                    a = np.float64(u_out[i, r, 2 * l])
                    b = np.float64(u_out[i, r, 2 * l + 1])
                    dx = x - m[0, r, l]
                    da = a - m[1, r, l]
                    db = b - m[2, r, l]
                    m[0, r, l] += dx * inv
                    m[1, r, l] += da * inv
                    m[2, r, l] += db * inv
                    m[3, r, l] += dx * (x - m[0, r, l])
                    m[4, r, l] += da * (a - m[1, r, l])
                    m[5, r, l] += db * (b - m[2, r, l])


class Plan:
    """The numba kernel's plan of one (model, grid): the tables of `PlanTables`, checked once.

    Plan(*tables) takes the arguments of `PlanTables` (as `_core.Plan` does); `run` takes only the
    per-structure arrays and the outputs.
    """

    def __init__(self, *tables: Any, **named: Any) -> None:
        t = self.tables = check_tables(PlanTables(*tables, **named))
        self._ph_re = np.ascontiguousarray(t.pattern_phase.real)
        self._ph_im = np.ascontiguousarray(t.pattern_phase.imag)
        self._real_phase = bool(np.all(self._ph_im == 0.0))
        # pairs grouped by species (stable): those of species sp are sp_pairs[sp_off[sp]:sp_off[sp + 1]]
        self._sp_pairs = np.argsort(t.pair_species, kind="stable").astype(np.int64)
        self._sp_off = np.searchsorted(t.pair_species[self._sp_pairs], np.arange(t.ff_re.shape[0] + 1)).astype(np.int64)
        self._ff_im = t.ff_im if t.ff_im.size else np.zeros((0, 0, 0))
        self._sub_re = np.ascontiguousarray(t.substrate.real)
        self._sub_im = np.ascontiguousarray(t.substrate.imag)
        # segments of the L axis; sincos arguments per site: [step, qz[seg_l[0]], qz[seg_l[1]], ...] * z,
        # or none (every point its own sincos) where no segment is longer than one point
        seg_l, seg_len = l_segments(t.qz, t.uniform_step)
        recurrence = bool(np.any(seg_len > 1))
        self._step = t.uniform_step if recurrence else 0.0
        none = np.zeros(0, np.int64)
        self._seg_l: np.ndarray = seg_l if recurrence else none
        self._seg_len: np.ndarray = seg_len if recurrence else none
        self._seed_q = np.concatenate(([self._step], t.qz[seg_l])) if recurrence else np.zeros(0)
        self._qz_max = float(max(np.abs(t.qz).max(initial=0.0), self._step))

    def run(self, z, weight, rough=None, film_field: np.ndarray | None = None,
            intensity: np.ndarray | None = None, threads: int = 0, bragg=None,
            moments: np.ndarray | None = None) -> None:
        """Fill `film_field` (U) and/or `intensity` (I) of the structures z (n, S), weight (n, E),
        rough (n, NL) / None in place, and the per-group `moments` (with both outputs and the (NL,) `bragg`
        mask); see docs/kernel.md."""
        t = self.tables
        z, weight, rough, threads = check_call(t, z, weight, rough, film_field, intensity, threads)
        mask = check_moments(t, z.shape[0], film_field, intensity, bragg, moments)
        R, NL = t.substrate.shape
        if z.shape[0] == 0 or R == 0 or NL == 0 or (film_field is None and intensity is None):
            return
        out = film_field if film_field is not None else intensity
        real_t = np.float32 if out is not None and out.dtype in (np.complex64, np.float32) else np.float64
        u_view = film_field.view(real_t) if film_field is not None else np.zeros((0, 0, 0), real_t)
        i_view = intensity if intensity is not None else np.zeros((0, 0, 0), real_t)
        previous = numba.get_num_threads()
        if threads > 0:
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
        try:
            _film_fields_core(z, weight, t.entry_site, t.entry_pair, t.pair_column, t.pair_species,
                              self._ph_re, self._ph_im, self._real_phase, self._sp_off, self._sp_pairs,
                              t.rod_pattern, t.qz, self._step, self._seg_l, self._seg_len, self._seed_q,
                              self._qz_max, t.ff_re, self._ff_im, t.ff_im.size > 0,
                              self._sub_re, self._sub_im, rough if rough is not None else np.zeros((0, 0)),
                              rough is not None, u_view, film_field is not None, i_view, intensity is not None)
            if mask is not None:
                _group_moments(i_view, u_view, mask, real_t == np.float32, moments)
        finally:
            if threads > 0:
                numba.set_num_threads(previous)
