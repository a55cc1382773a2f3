"""Plain numpy statement of the kernel contract (docs/kernel.md), for tests.

Deliberately literal and slow: it is what the compiled and numba kernels must
compute from the same flat arrays, independent of how the arrays were built.
"""

from __future__ import annotations

import numpy as np


def film_fields_contract(
    z, weight, entry_site, entry_pair, pair_column, pair_species,
    pattern_phase, rod_pattern, qz, ff_re, ff_im, substrate, rough,
):
    """Return (U, I) as complex128/float64 arrays of shape (n, R, NL)."""
    n = z.shape[0]
    n_pairs = pair_column.shape[0]
    n_species = ff_re.shape[0]
    n_patterns = pattern_phase.shape[0]
    ff = ff_re + (1j * ff_im if ff_im.size else 0.0)
    phase_z = np.exp(1j * qz[None, None, :] * z[:, :, None])  # (n, S, NL)
    G = np.zeros((n, n_pairs, qz.size), complex)
    for e in range(entry_site.size):
        G[:, entry_pair[e]] += weight[:, e, None] * phase_z[:, entry_site[e]]
    H = np.zeros((n, n_patterns, n_species, qz.size), complex)
    for p in range(n_pairs):
        H[:, :, pair_species[p]] += pattern_phase[None, :, pair_column[p], None] * G[:, None, p]
    U = np.einsum("srl,nrsl->nrl", ff, H[:, rod_pattern])
    I = np.abs(substrate[None] + U) ** 2
    if rough.size:
        I = I * rough[:, None, :]
    return U, I


def paper_like_inputs(n: int, seed: int = 0, uniform: bool = True, complex_ff: bool = False,
                      general_phase: bool = False, with_rough: bool = False, gapped: bool = False) -> dict:
    """Random contract inputs with the sizes of the paper-12L preset.

    13 layers × 5 sites (S = 65), A sites holding Sr and La (E = 78), 4 columns,
    6 scatterers, 7 pairs, 16 rods (4 phase patterns), 240 L points.
    Not physical; only the shapes, value ranges and index structure matter.
    `gapped`: L in steps of 1/40 without the points within 0.05 of integers (runs of 35 points
    between gaps, not aligned to the kernels' blocks) and three irregular points; uniform_step
    is the runs' spacing.
    """
    rng = np.random.default_rng(seed)
    n_layers, n_sites_per_layer = 13, 5
    S = n_layers * n_sites_per_layer
    c = rng.uniform(3.8, 4.0, (n, n_layers))
    Z = np.concatenate([np.zeros((n, 1)), np.cumsum(c, axis=1)[:, :-1]], axis=1)
    frac = np.array([0.0, 0.5, 0.0, 0.5, 0.5]) + rng.uniform(-0.05, 0.05, (n, n_layers, 5))
    z = (Z[:, :, None] + c[:, :, None] * frac).reshape(n, S)
    # site order per layer: A, B, O_ap, O_x, O_y; columns: 0 (0,0), 1 (½,½), 2 (½,0), 3 (0,½)
    # scatterers: 0 Sr, 1 La, 2 Ti, 3 Al, 4 O_ap, 5 O_eq; pairs: (col, sp)
    pairs = [(0, 0), (0, 1), (1, 2), (1, 3), (1, 4), (2, 5), (3, 5)]
    pair_index = {p: i for i, p in enumerate(pairs)}
    entry_site, entry_pair = [], []
    for j in range(n_layers):
        base = j * n_sites_per_layer
        for sp in (0, 1):
            entry_site.append(base), entry_pair.append(pair_index[(0, sp)])
        entry_site.append(base + 1), entry_pair.append(pair_index[(1, 2 if j < 9 else 3)])
        entry_site.append(base + 2), entry_pair.append(pair_index[(1, 4)])
        entry_site.append(base + 3), entry_pair.append(pair_index[(2, 5)])
        entry_site.append(base + 4), entry_pair.append(pair_index[(3, 5)])
    E = len(entry_site)
    weight = rng.uniform(0.0, 1.0, (n, E))
    h = np.tile(np.arange(4), 4)
    k = np.repeat(np.arange(4), 4)
    if general_phase:
        xy = rng.uniform(0, 1, (4, 2))
        pattern_phase = np.exp(2j * np.pi * (h[:, None] * xy[None, :, 0] + k[:, None] * xy[None, :, 1]))
        rod_pattern = np.arange(16)
    else:
        xy = np.array([[0, 0], [0.5, 0.5], [0.5, 0], [0, 0.5]])
        ph, pk = np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1])
        pattern_phase = np.exp(2j * np.pi * (ph[:, None] * xy[None, :, 0] + pk[:, None] * xy[None, :, 1]))
        pattern_phase = np.round(pattern_phase.real) + 0j
        rod_pattern = (h % 2) + 2 * (k % 2)
    L = np.arange(1, 241) / 40.0
    if not uniform:
        L = np.sort(rng.uniform(0.02, 6.0, 240))
    if gapped:
        L = np.arange(1, 400) / 40.0
        L = L[np.abs(L - np.round(L)) > 0.051][:240]
        L[[50, 51, 170]] += np.array([0.003, 0.004, -0.007])
    qz = 2 * np.pi * L / 3.905
    ff_re = rng.uniform(5, 40, (6, 16, L.size))
    ff_im = rng.uniform(0, 3, (6, 16, L.size)) if complex_ff else np.zeros((0,))
    substrate = rng.normal(size=(16, L.size)) + 1j * rng.normal(size=(16, L.size))
    rough = rng.uniform(0.5, 1.0, (n, L.size)) if with_rough else np.zeros((0,))
    return dict(
        z=z, weight=weight, entry_site=np.asarray(entry_site, np.int64),
        entry_pair=np.asarray(entry_pair, np.int64),
        pair_column=np.array([p[0] for p in pairs], np.int64),
        pair_species=np.array([p[1] for p in pairs], np.int64),
        pattern_phase=pattern_phase, rod_pattern=np.asarray(rod_pattern, np.int64), qz=qz,
        uniform_step=2 * np.pi / 40 / 3.905 if gapped else (qz[1] - qz[0]) if uniform else 0.0,
        ff_re=ff_re, ff_im=ff_im, substrate=substrate, rough=rough,
    )
