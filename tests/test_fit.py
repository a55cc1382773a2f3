"""`mamba-ctr fit`: PARAMS parsing, the structure fit on measured points (recovers a known truth) and the command."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from mamba_ctr.baselines.fit_params import FitParameters
from mamba_ctr.baselines.lsq import IntensityResidual
from mamba_ctr.baselines.structure_fit import (
    MeasuredLeastSquares,
    MeasuredPoints,
    RodModel,
    fit_structure,
    sigma_from_model,
)
from mamba_ctr.errors import InputError
from mamba_ctr.physics.perovskite import perovskite_model, perovskite_structures

RODS = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (2.0, 0.0)]
SCALE = 1e-6

PARAMS = [
    {"name": "z_B_2", "target": "z", "layer": 2, "site": "B", "bounds": [0.45, 0.55]},
    {"name": "z_B_3", "target": "z", "layer": 3, "site": "B", "bounds": [0.45, 0.55]},
    {"name": "z_Oeq_3", "target": "z", "layer": 3, "site": ["O_x", "O_y"], "bounds": [0.44, 0.56]},
    {"name": "z_Oeq_2", "target": "z", "layer": 2, "species": "O_eq", "tie": "z_Oeq_3"},
    {"name": "c_2", "target": "c", "layer": 2, "bounds": [3.7, 3.9]},
    {"name": "occ_top", "target": "occupancy", "layer": -1, "bounds": [0.3, 1.0]},
    {"name": "p_1", "target": "mix", "layer": 1, "species": "Sr", "partner": "La", "bounds": [0.0, 1.0]},
    {"name": "beta", "target": "beta", "bounds": [0.0, 0.4]},
    {"name": "B_La", "target": "b_iso", "species": "La", "bounds": [0.2, 1.5]},
]


def film(**changes):
    """A 4-layer SrTiO3/LaAlO3-like film on SrTiO3 with mixing in layer 1 (the truth of these tests)."""
    model = perovskite_model([("Sr",), ("Sr", "La"), ("La",), ("La",)], ["Ti", "Ti", "Al", "Al"])
    layers = {"c": [3.905, 3.9, 3.8, 3.79], "z_B": [0.5, 0.51, 0.49, 0.5], "z_Oap": [0, 0.01, -0.02, 0],
              "z_Ox": [0.5, 0.5, 0.52, 0.5], "z_Oy": [0.5, 0.5, 0.52, 0.5], "sr": [1, 0.6, 0, 0],
              "occupancy": [1, 1, 1, 0.7]}
    layers.update(changes)
    return perovskite_structures(model, layers["c"], layers["z_B"], layers["z_Oap"], layers["z_Ox"], layers["z_Oy"],
                                 layers["sr"], layers["occupancy"], beta=[changes.get("beta", 0.1)])


def rod_points(seed: int = 1, n: int = 45) -> tuple[np.ndarray, np.ndarray]:
    """(rod index, L) of n points per rod at irregular L, away from the Bragg peaks."""
    rng = np.random.default_rng(seed)
    rod, L = [], []
    for r in range(len(RODS)):
        values = np.sort(rng.uniform(0.2, 3.8, n))
        values = values[np.abs(values - np.round(values)) > 0.06]
        rod += [r] * values.size
        L += values.tolist()
    return np.array(rod), np.array(L)


def simulated(structure, spec, rod, L, noise: float = 0.0, seed: int = 2):
    """Intensities of `structure` at the points (times SCALE, with relative Gaussian noise on I)."""
    points = MeasuredPoints.from_points(rod, RODS, RODS, L, np.ones_like(L), None, "I", "constant:1")
    params = FitParameters(spec, structure, RODS)
    problem = MeasuredLeastSquares(params, RodModel(points), IntensityResidual(points.F**2, points.used, "sqrt",
                                                                               "none", None))
    x_truth = params.x0
    I = problem.simulate_rows(x_truth[None])[0][points.used] * SCALE
    if noise:
        I = I * (1 + noise * np.random.default_rng(seed).standard_normal(I.size))
    return I, params


def with_values(spec, values):
    """The spec with start values (free parameters in order)."""
    free = iter(values)
    return {"fit": spec.get("fit", {}), "param": [dict(p, value=float(next(free))) if "tie" not in p else dict(p)
                                                  for p in spec["param"]]}


def perturbed_start(params, seed: int = 3, fraction: float = 0.25):
    rng = np.random.default_rng(seed)
    width = params.upper - params.lower
    return np.clip(params.x0 + fraction * rng.uniform(-1, 1, params.size) * width, params.lower, params.upper)


def test_fit_recovers_the_truth_without_noise():
    spec = {"fit": {"scale": "global"}, "param": PARAMS}
    rod, L = rod_points()
    I, truth = simulated(film(), spec, rod, L)
    start = with_values(spec, perturbed_start(truth))
    params = FitParameters(start, film(), RODS)
    assert np.all(np.abs(params.x0 - truth.x0) > 0)
    points = MeasuredPoints.from_points(rod, RODS, RODS, L, I, None, "I", "relative:0.01")
    fit = fit_structure(params, points, n_starts=1)
    assert np.all(np.abs(fit.x - truth.x0) <= 1e-5 * (truth.upper - truth.lower)), (fit.x - truth.x0)
    np.testing.assert_allclose(fit.scales, SCALE, rtol=1e-6)
    assert fit.after.chi2_red < 1e-6 < fit.before.chi2_red and fit.after.r1 < 1e-6
    values = dict(zip([p.name for p in params.parameters], fit.values, strict=True))
    assert values["z_Oeq_2"] == pytest.approx(values["z_Oeq_3"])  # the tie
    assert fit.evaluations_per_second > 0 and fit.n_simulated > fit.n_evaluations
    # the fitted structure carries the tie and the Debye–Waller factor
    np.testing.assert_allclose(fit.structure.z[0, 2, 3:], film().z[0, 3, 3:], atol=1e-5)
    La = next(s for s in fit.structure.model.scatterers.values() if s.name == "La")
    assert 8 * math.pi**2 * La.u_iso == pytest.approx(values["B_La"])


def test_noisy_fit_errors_cover_the_truth():
    spec = {"fit": {"scale": "rods"}, "param": [p for p in PARAMS if p["target"] != "b_iso"]}
    rod, L = rod_points(n=60)
    I, truth = simulated(film(), spec, rod, L, noise=0.03)
    params = FitParameters(with_values(spec, perturbed_start(truth, fraction=0.1)), film(), RODS)
    points = MeasuredPoints.from_points(rod, RODS, RODS, L, I, np.abs(I) * 0.03, "I")
    assert points.error_model == "file"
    fit = fit_structure(params, points, n_starts=2, seed=5)
    free = [q for q, p in enumerate(params.parameters) if p.tie is None]
    pulls = (fit.values[free] - truth.x0) / fit.errors[free]
    assert np.all(np.isfinite(pulls)) and np.all(np.abs(pulls) < 3), pulls
    assert 0.5 < fit.after.chi2_red < 2
    assert fit.correlation.shape == (params.size, params.size)
    np.testing.assert_allclose(np.diag(fit.correlation), 1.0)


def test_bounds_hold_and_free_scale_is_fitted():
    spec = {"fit": {"scale": "none"},
            "param": [{"name": "z_B_3", "target": "z", "layer": 3, "site": "B", "bounds": [0.45, 0.55]},
                      {"name": "c_2", "target": "c", "layer": 2, "bounds": [3.82, 3.9], "value": 3.86},  # truth 3.8
                      {"name": "s", "target": "scale", "bounds": [1e-8, 1e-4]}]}
    rod, L = rod_points(n=30)
    truth_spec = {"fit": spec["fit"], "param": [spec["param"][0], {"name": "c_2", "target": "c", "layer": 2,
                                                                   "bounds": [3.7, 3.9]}]}
    I, _ = simulated(film(), truth_spec, rod, L)
    points = MeasuredPoints.from_points(rod, RODS, RODS, L, I, None, "I", "relative:0.01")
    params = FitParameters(spec, film(), RODS)
    assert np.isnan(params.x0[2])  # a free scale without a value starts at its closed-form value
    fit = fit_structure(params, points)
    assert fit.x[1] == pytest.approx(3.82)
    assert 1e-7 < fit.x[2] < 1e-5


def test_starts_are_keyed_by_seed():
    spec = {"param": PARAMS[:2]}
    rod, L = rod_points(n=20)
    I, params = simulated(film(), spec, rod, L)
    points = MeasuredPoints.from_points(rod, RODS, RODS, L, I, None, "I", "relative:0.05")
    three = fit_structure(params, points, n_starts=3, seed=7, spread=1.0)
    two = fit_structure(params, points, n_starts=2, seed=7, spread=1.0)
    np.testing.assert_array_equal(three.starts[:2], two.starts)
    np.testing.assert_array_equal(three.starts[0], params.x0)


@pytest.mark.parametrize("change, message", [
    ({"name": "z_B_2", "target": "z", "layer": 2, "site": "B", "bounds": [0.5, 0.5]}, "lower < upper"),
    ({"name": "z_B_2", "target": "z", "layer": 2, "site": "B", "bounds": [0.55, 0.45]}, "lower < upper"),
    ({"name": "z_B_2", "target": "z", "layer": 2, "site": "B", "bounds": []}, "two finite numbers"),
    ({"name": "z_B_2", "target": "z", "layer": 2, "site": "B"}, "bounds"),
    ({"name": "z_B_2", "target": "z", "layer": 9, "site": "B", "bounds": [0.4, 0.6]}, "layers are 0..3"),
    ({"name": "z_B_2", "target": "z", "layer": 2, "site": "Q", "bounds": [0.4, 0.6]}, "sites are A, B"),
    ({"name": "z_B_2", "target": "z", "layer": 2, "species": "Mn", "bounds": [0.4, 0.6]}, "layer 2 holds"),
    ({"name": "z_B_2", "target": "zz", "layer": 2, "bounds": [0.4, 0.6]}, "target must be one of"),
    ({"name": "z_B_2", "target": "z", "layer": 2, "site": "B", "bound": [0.4, 0.6]}, "unknown key 'bound'"),
    ({"name": "z_B_2", "target": "z", "layer": 2, "site": "B", "bounds": [0.4, 0.6], "value": 0.7}, "outside"),
    ({"name": "o", "target": "occupancy", "layer": 3, "bounds": [0.5, 1.2]}, "0 ≤ occupancy ≤ 1"),
    ({"name": "b", "target": "u_iso", "species": "Xe", "bounds": [0, 1]}, "unknown species 'Xe'"),
    ({"name": "t", "target": "z", "layer": 3, "site": "B", "tie": "nobody"}, "unknown parameter 'nobody'"),
    ({"name": "t", "target": "z", "layer": 3, "site": "B", "tie": "2*"}, "tie must read"),
    ({"name": "other", "target": "z", "layer": 2, "site": "B", "bounds": [0.4, 0.6]}, "both move"),
    ({"name": "z_B_1", "target": "z", "layer": 1, "site": "B", "bounds": [0.4, 0.6]}, "used twice"),
    ({"name": "f", "target": "fraction", "layer": 1, "species": "Sr", "bounds": [0.5, 0.9]}, "sum to"),
    ({"name": "s", "target": "scale", "rod": [3, 3], "bounds": [0.1, 1]}, r"no measured rod \(3, 3\)"),
])
def test_bad_params_are_one_input_error(change, message):
    spec = {"param": [{"name": "z_B_1", "target": "z", "layer": 2, "site": "B", "bounds": [0.45, 0.55]}, change]}
    if change.get("target") == "scale":
        spec["fit"] = {"scale": "none"}
    with pytest.raises(InputError, match=message):
        FitParameters(spec, film(), RODS)


def test_bad_spec_and_error_models():
    with pytest.raises(InputError, match="at least one"):
        FitParameters({"param": []}, film(), RODS)
    with pytest.raises(InputError, match="unknown top-level key"):
        FitParameters({"params": [PARAMS[0]]}, film(), RODS)
    with pytest.raises(InputError, match="must be \"none\""):
        FitParameters({"param": [{"name": "s", "target": "scale", "bounds": [0.1, 1]}]}, film(), RODS)
    with pytest.raises(InputError, match="state an error model"):
        sigma_from_model(np.ones(3), "I", "")
    with pytest.raises(InputError, match="counts"):
        sigma_from_model(np.ones(3), "F", "poisson")
    with pytest.raises(InputError, match="error model must be"):
        sigma_from_model(np.ones(3), "I", "relative:-1")
    np.testing.assert_allclose(sigma_from_model(np.array([4.0, 0.0]), "I", "poisson"), [2.0, 1.0])
    with pytest.raises(InputError, match="state an error model"):
        MeasuredPoints.from_points([0], RODS[:1], RODS[:1], [0.5], [1.0], None, "I")


# ----------------------------------------------------------------- the command
def write_inputs(folder: Path, rods=RODS) -> dict[str, Path]:
    """A .sur film, a .bul substrate, a plain data file (h k l I) and a PARAMS file."""
    from mamba_ctr.io.structure_formats import Atom, AtomStructure, write_rod_cell

    U = {"Sr": 0.0064, "Ti": 0.037, "La": 0.0095, "Al": 0.015, "O": 0.01}
    bulk = [Atom("Sr", 0, 0, 0, U["Sr"]), Atom("Ti", 0.5, 0.5, 0.5, U["Ti"]), Atom("O", 0.5, 0.5, 0, U["O"]),
            Atom("O", 0.5, 0, 0.5, U["O"]), Atom("O", 0, 0.5, 0.5, U["O"])]
    paths = {"substrate": folder / "STO.bul", "structure": folder / "film.sur", "data": folder / "rods.txt",
             "params": folder / "params.toml"}
    write_rod_cell(paths["substrate"], AtomStructure(tuple(bulk), (3.905, 3.905, 3.905, 90, 90, 90), "fractional"))
    film_atoms, z0 = [], 0.0
    for j, (A, B, c) in enumerate((("Sr", "Ti", 3.905), ("La", "Al", 3.8), ("La", "Al", 3.8))):
        for atom in (Atom(A, 0, 0, 0, U[A]), Atom(B, 0.5, 0.5, 0.5 + 0.01 * j, U[B]), Atom("O", 0.5, 0.5, 0, U["O"]),
                     Atom("O", 0.5, 0, 0.5, U["O"]), Atom("O", 0, 0.5, 0.5, U["O"])):
            film_atoms.append(Atom(atom.species, atom.x, atom.y, (z0 + c * atom.z) / 12.0, atom.u_iso))
        z0 += c
    write_rod_cell(paths["structure"], AtomStructure(tuple(film_atoms), (3.905, 3.905, 12.0, 90, 90, 90),
                                                     "fractional"))
    rng = np.random.default_rng(0)
    lines = []
    for h, k in rods:
        for L in np.sort(rng.uniform(0.3, 2.7, 25)):
            lines.append(f"{h} {k} {float(L)!r} {float(1e-3 * (1 + 5 * np.cos(3 * L)**2) * (h + k + 1))!r}")
    paths["data"].write_text("\n".join(lines) + "\n")
    paths["params"].write_text('[fit]\nscale = "global"\n\n[[param]]\nname = "z_B_2"\ntarget = "z"\nlayer = 2\n'
                               'species = "Al"\nbounds = [0.45, 0.56]\n\n[[param]]\nname = "beta"\ntarget = "beta"\n'
                               'bounds = [0.0, 0.3]\n')
    return paths


def test_fit_command_writes_every_output(tmp_path):
    from mamba_ctr.workflows import fit

    paths = write_inputs(tmp_path, rods=RODS[:2])
    config = fit.Config(data=paths["data"], structure=paths["structure"], params=paths["params"],
                        substrate=paths["substrate"], columns="h,k,l,I", error_model="relative:0.1",
                        out=tmp_path / "out", quiet=True)
    result = fit.run(config)
    for name in ("fit.json", "fit.md", "points.csv", "params.toml", "structure_fit.xyz", "structure_fit.sur",
                 "fit_rods.png", "fit_rod_1_0.png"):
        assert (tmp_path / "out" / name).is_file(), name
    report = result.report
    assert report["sigma"] == "error model relative:0.1" and report["n_points"] == 50
    assert [p["name"] for p in report["parameters"]] == ["z_B_2", "beta"]
    assert "χ²_red" in result.summary() and "evaluations/s" in result.summary()
    assert (tmp_path / "out" / "params.toml").read_bytes() == paths["params"].read_bytes()
    with pytest.raises(InputError, match="output exists"):
        fit.run(config)


@pytest.mark.parametrize("case", ["half-order", "no-sigma", "overlap", "occupancy", "params", "columns"])
def test_fit_command_bad_input_writes_nothing(tmp_path, case):
    from mamba_ctr.workflows import fit

    paths = write_inputs(tmp_path, rods=[*RODS[:2], (0.5, 0.5)] if case == "half-order" else RODS[:2])
    options = {"error_model": "" if case == "no-sigma" else "relative:0.1", "columns": "h,k,l,I"}
    if case == "overlap":
        text = paths["structure"].read_text().splitlines()
        paths["structure"].write_text("\n".join([*text, text[3].replace("Ti", "Mn", 1)]) + "\n")
    if case == "occupancy":
        text = paths["structure"].read_text().splitlines()
        fields = text[-1].split()
        paths["structure"].write_text("\n".join([*text[:-1], " ".join([*fields[:-1], "1.5"])]) + "\n")
    if case == "params":
        paths["params"].write_text(paths["params"].read_text().replace('target = "beta"', 'target = "betta"'))
    if case == "columns":
        options["columns"] = "h,k,I"
    config = fit.Config(data=paths["data"], structure=paths["structure"], params=paths["params"],
                        substrate=paths["substrate"], out=tmp_path / "out", quiet=True, figures=False, **options)
    with pytest.raises(InputError) as error:
        fit.run(config)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()
    if case == "half-order":
        assert "(1/2, 1/2)" in str(error.value)
        result = fit.run(fit.Config(**{**config.__dict__, "drop_rods": True}))
        assert result.report["dropped_rods"] == ["(1/2, 1/2)"]
