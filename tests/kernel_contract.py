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
