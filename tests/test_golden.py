"""The four golden cases of paper12L_golden.npz, matched on every backend (float64 path).

Tolerance (shared/data/README.md): per rod and off the Bragg points,
|ours − golden| ≤ 1e-9 · max |golden| of that rod.
"""

import numpy as np
import pytest

import mamba_ctr
from mamba_ctr.physics.lowering import substrate_field
from mamba_ctr.simulate import network_input

CASES = ["nominal", "smooth", "rough", "asym"]


def golden_structures(golden, case):
    preset = mamba_ctr.presets.get("paper-12L")
    p = {key: golden[f"{case}/{key}"] for key in ("cn", "z_B", "z_O1", "z_O2", "z_O3", "mix", "occ")}
    # z_O1 = apical O, z_O2 = O at (0, ½) = O_y, z_O3 = O at (½, 0) = O_x
    return preset.from_parameters(p["cn"], p["z_B"], p["z_O1"], p["z_O3"], p["z_O2"], p["mix"], p["occ"])


def assert_rods_close(ours, gold, bragg, what):
    off = ~bragg
    scale = np.abs(gold[:, off]).max(axis=1)
    error = np.abs(ours[:, off] - gold[:, off]).max(axis=1)
    worst = int(np.argmax(error / scale))
    assert np.all(error <= 1e-9 * scale), f"{what}: rod {worst} error {error[worst]:.3g} > 1e-9 × {scale[worst]:.3g}"


def test_grid_is_the_paper_grid(golden):
    grid = mamba_ctr.paper_grid()
    assert np.array_equal(grid.h, golden["h"]) and np.array_equal(grid.k, golden["k"])
    np.testing.assert_allclose(grid.L, golden["L"], rtol=0, atol=1e-15)
    assert np.array_equal(grid.bragg, golden["bragg"])
    assert np.array_equal(np.flatnonzero(grid.bragg), np.arange(39, 240, 40))


@pytest.mark.parametrize("case", CASES)
def test_golden_case(golden, case, backend):
    structures = golden_structures(golden, case)
    grid = mamba_ctr.paper_grid()
    rods = mamba_ctr.simulate(structures, grid, backend=backend, dtype="float64")
    assert rods.backend == backend
    assert_rods_close(rods.film_field[0], golden[f"{case}/film_field"], grid.bragg, f"{case} U")
    assert_rods_close(rods.intensity[0], golden[f"{case}/intensity"], grid.bragg, f"{case} I")
    assert_rods_close(rods.X[0], golden[f"{case}/X"], grid.bragg, f"{case} X")
    assert np.all(rods.X[0][:, grid.bragg] == 0)


def test_substrate_field_matches_golden(golden):
    preset = mamba_ctr.presets.get("paper-12L")
    S = substrate_field(preset.model, preset.grid)
    assert_rods_close(S, golden["nominal/bulk_field"], preset.grid.bragg, "S")


def test_golden_float32_output_is_close(golden, backend):
    structures = golden_structures(golden, "smooth")
    rods = mamba_ctr.simulate(structures, mamba_ctr.paper_grid(), backend=backend)
    assert rods.intensity.dtype == np.float32 and rods.film_field.dtype == np.complex64
    gold = golden["smooth/film_field"]
    scale = np.abs(gold).max(axis=1, keepdims=True)
    assert np.all(np.abs(rods.film_field[0] - gold) <= 1e-6 * scale)


def test_network_input_is_log_with_bragg_zeroed():
    intensity = np.array([[[1.0, np.e, 10.0]]])
    X = network_input(intensity, np.array([False, False, True]))
    np.testing.assert_allclose(X, [[[0.0, 1.0, 0.0]]])
