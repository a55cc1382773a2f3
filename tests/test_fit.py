"""`mamba-ctr fit`: PARAMS parsing, the structure fit on measured points (recovers a known truth) and the command."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from mamba_ctr.baselines.lsq import IntensityResidual
from mamba_ctr.baselines.structure_fit import (
    MeasuredLeastSquares,
    MeasuredPoints,
    fit_structure,
    sigma_from_model,
)
from mamba_ctr.errors import InputError
from mamba_ctr.io.measured import MeasuredRods
from mamba_ctr.io.structure_formats import Atom, AtomStructure
from mamba_ctr.measured_sim import MeasuredSimulator
from mamba_ctr.physics.film_from_atoms import build_film
from mamba_ctr.physics.structure_params import FitParameters
from mamba_ctr.reconstruct.refine import SolverOptions

RODS = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0)]
SCALE = 1e-6
A = 3.905
U = {"Sr": 0.0064, "Ti": 0.037, "La": 0.0095, "Al": 0.015, "O": 0.01}

PARAMS = [
    {"name": "z_B_1", "target": "z", "layer": 1, "species": "Al", "bounds": [0.45, 0.55]},
    {"name": "z_B_2", "target": "z", "layer": 2, "species": "Al", "bounds": [0.45, 0.55]},
    {"name": "z_Oeq_2", "target": "z", "layer": 2, "species": "O", "z_window": [0.3, 0.7], "bounds": [0.44, 0.56]},
    {"name": "z_Oeq_1", "target": "z", "layer": 1, "species": "O", "z_window": [0.3, 0.7], "tie": "z_Oeq_2"},
    {"name": "c_1", "target": "c", "layer": 1, "bounds": [3.7, 3.9]},
    {"name": "occ_top", "target": "fraction", "layer": -1, "species": "La", "bounds": [0.3, 1.0]},
    {"name": "occ_B_top", "target": "fraction", "layer": -1, "species": "Al", "tie": "occ_top"},
    {"name": "occ_O_top", "target": "fraction", "layer": -1, "species": "O", "tie": "occ_top"},
    {"name": "p_1", "target": "mix", "layer": 1, "species": "Sr", "partner": "La", "bounds": [0.0, 1.0]},
    {"name": "beta", "target": "beta", "bounds": [0.0, 0.4], "value": 0.1},
    {"name": "B_La", "target": "b_iso", "species": "La", "bounds": [0.2, 1.5]},
]


def atoms() -> AtomStructure:
    """Three perovskite layers above z = 0 (SrTiO3, then La/Sr-mixed and LaAlO3 with a 0.7-occupied top), in Å."""
    out, z0 = [], 0.0
    layers = (({"Sr": 1.0}, "Ti", 3.905, 0.5, 0.5), ({"Sr": 0.6, "La": 0.4}, "Al", 3.8, 0.51, 0.52),
              ({"La": 0.7}, "Al", 3.79, 0.49, 0.52))
    for j, (a_site, b, c, z_b, z_o) in enumerate(layers):
        occ = 0.7 if j == 2 else 1.0
        out += [Atom(el, 0.0, 0.0, z0, U[el], f) for el, f in a_site.items()]
        out += [Atom(b, A / 2, A / 2, z0 + c * z_b, U[b], occ), Atom("O", A / 2, A / 2, z0 + 0.01 * c, U["O"], occ),
                Atom("O", A / 2, 0.0, z0 + c * z_o, U["O"], occ), Atom("O", 0.0, A / 2, z0 + c * z_o, U["O"], occ)]
        z0 += c
    return AtomStructure(tuple(out), None, "angstrom")


def substrate() -> AtomStructure:
    bulk = (Atom("Sr", 0, 0, 0, U["Sr"]), Atom("Ti", 0.5, 0.5, 0.5, U["Ti"]), Atom("O", 0.5, 0.5, 0, U["O"]),
            Atom("O", 0.5, 0, 0.5, U["O"]), Atom("O", 0, 0.5, 0.5, U["O"]))
    return AtomStructure(bulk, (A, A, A, 90.0, 90.0, 90.0), "fractional")


FILM = build_film(atoms(), substrate(), cell=(A, A))


def rod_points(seed: int = 1, n: int = 45) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(h, k, L) of about n points per rod at irregular L, away from the Bragg peaks."""
    rng = np.random.default_rng(seed)
    h, k, L = [], [], []
    for rod in RODS:
        values = np.sort(rng.uniform(0.2, 3.8, n))
        values = values[np.abs(values - np.round(values)) > 0.06]
        h += [rod[0]] * values.size
        k += [rod[1]] * values.size
        L += values.tolist()
    return np.array(h), np.array(k), np.array(L)


def measured(spec, hkl, noise: float = 0.0, seed: int = 2, sigma: bool = False):
    """MeasuredRods of the structure that `spec`'s start values describe (×SCALE, relative Gaussian noise on I)."""
    h, k, L = hkl
    ones = MeasuredRods.from_points(h, k, L, np.ones_like(L), quantity="I")
    simulator = MeasuredSimulator(FILM, ones)
    points = MeasuredPoints.from_simulator(simulator, "constant:1")
    truth = FitParameters(spec, FILM.nominal, points.rods)
    problem = MeasuredLeastSquares(truth, simulator, points, IntensityResidual(points.F**2, points.used, "sqrt",
                                                                               "none", None))
    I = np.empty(L.size)
    I[simulator.points] = problem.simulate_rows(truth.x0[None])[0][points.used] * SCALE
    if noise:
        I = I * (1 + noise * np.random.default_rng(seed).standard_normal(I.size))
    rods = MeasuredRods.from_points(h, k, L, I, quantity="I", sigma=noise * np.abs(I) if sigma else None)
    return rods, truth


def prepared(spec, rods, error_model: str = ""):
    simulator = MeasuredSimulator(FILM, rods)
    points = MeasuredPoints.from_simulator(simulator, error_model)
    return FitParameters(spec, FILM.nominal, points.rods), points, simulator


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
    rods, truth = measured(spec, rod_points())
    params, points, simulator = prepared(with_values(spec, perturbed_start(truth)), rods, "relative:0.01")
    assert np.all(params.x0 != truth.x0)
    fit = fit_structure(params, points, simulator)
    assert np.all(np.abs(fit.x - truth.x0) <= 1e-5 * (truth.upper - truth.lower)), fit.x - truth.x0
    np.testing.assert_allclose(fit.scales, SCALE, rtol=1e-6)
    assert fit.after.chi2_red < 1e-6 < fit.before.chi2_red and fit.after.r1 < 1e-6
    values = dict(zip([p.name for p in params.parameters], fit.values, strict=True))
    assert values["z_Oeq_1"] == pytest.approx(values["z_Oeq_2"]) and values["occ_O_top"] == values["occ_top"]
    assert fit.evaluations_per_second > 0 and fit.n_simulated > fit.n_evaluations
    # the fitted structure carries the tie, the mixing and the Debye–Waller factor
    assert fit.structure.z[0, 1, 1] == pytest.approx(values["z_Oeq_2"]) == pytest.approx(truth.x0[2], abs=1e-5)
    La = [s for s in fit.structure.model.scatterers.values() if s.name.startswith("La")]
    assert [8 * math.pi**2 * s.u_iso for s in La] == pytest.approx([values["B_La"]])
    assert fit.structure.fraction[0, 1, 0].sum() == pytest.approx(1.0)


def test_noisy_fit_errors_cover_the_truth():
    spec = {"fit": {"scale": "rods"}, "param": [p for p in PARAMS if p["target"] != "b_iso"]}
    rods, truth = measured(spec, rod_points(n=60), noise=0.03, sigma=True)
    params, points, simulator = prepared(with_values(spec, perturbed_start(truth, fraction=0.1)), rods)
    assert points.error_model == "file"
    fit = fit_structure(params, points, simulator, n_starts=2, seed=5)
    free = [q for q, p in enumerate(params.parameters) if p.tie is None]
    pulls = (fit.values[free] - truth.x0) / fit.errors[free]
    assert np.all(np.isfinite(pulls)) and np.all(np.abs(pulls) < 3), pulls
    assert 0.5 < fit.after.chi2_red < 2
    assert fit.correlation.shape == (params.size, params.size)
    np.testing.assert_allclose(np.diag(fit.correlation), 1.0)


def test_bounds_hold_and_free_scale_is_fitted():
    spec = {"fit": {"scale": "none"},
            "param": [{"name": "z_B_2", "target": "z", "layer": 2, "species": "Al", "bounds": [0.45, 0.55]},
                      {"name": "c_1", "target": "c", "layer": 1, "bounds": [3.82, 3.9], "value": 3.86},  # truth 3.8
                      {"name": "s", "target": "scale", "bounds": [1e-8, 1e-4]}]}
    truth_spec = {"param": [spec["param"][0], {"name": "c_1", "target": "c", "layer": 1, "bounds": [3.7, 3.9]}]}
    rods, _ = measured(truth_spec, rod_points(n=30))
    params, points, simulator = prepared(spec, rods, "relative:0.01")
    assert np.isnan(params.x0[2])  # a free scale without a value starts at its closed-form value
    fit = fit_structure(params, points, simulator)
    assert fit.x[1] == pytest.approx(3.82)
    assert 1e-7 < fit.x[2] < 1e-5


def test_starts_are_keyed_by_seed():
    spec = {"param": PARAMS[:2]}
    rods, _ = measured(spec, rod_points(n=20))
    params, points, simulator = prepared(spec, rods, "relative:0.05")
    few = SolverOptions(max_nfev=2)  # the starts are what this test checks, not the fits
    three = fit_structure(params, points, simulator, n_starts=3, seed=7, spread=1.0, options=few)
    two = fit_structure(params, points, simulator, n_starts=2, seed=7, spread=1.0, options=few)
    np.testing.assert_array_equal(three.starts[:2], two.starts)
    np.testing.assert_array_equal(three.starts[0], params.x0)


@pytest.mark.parametrize("change, message", [
    ({"name": "z_B_2", "target": "z", "layer": 2, "site": "c3.1", "bounds": [0.5, 0.5]}, "lower < upper"),
    ({"name": "z_B_2", "target": "z", "layer": 2, "site": "c3.1", "bounds": [0.55, 0.45]}, "lower < upper"),
    ({"name": "z_B_2", "target": "z", "layer": 2, "site": "c3.1", "bounds": []}, "two finite numbers"),
    ({"name": "z_B_2", "target": "z", "layer": 2, "site": "c3.1"}, "bounds"),
    ({"name": "z_B_2", "target": "z", "layer": 9, "site": "c3.1", "bounds": [0.4, 0.6]}, "layers are 0..2"),
    ({"name": "z_B_2", "target": "z", "layer": 2, "site": "B", "bounds": [0.4, 0.6]}, "sites are c0, c1"),
    ({"name": "z_B_2", "target": "z", "layer": 2, "species": "Mn", "bounds": [0.4, 0.6]}, "layer 2 holds"),
    ({"name": "z_B_2", "target": "z", "layer": 2, "bounds": [0.4, 0.6]}, "needs site, species or z_window"),
    ({"name": "z_B_2", "target": "zz", "layer": 2, "bounds": [0.4, 0.6]}, "target must be one of"),
    ({"name": "z_B_2", "target": "z", "layer": 2, "site": "c3.1", "bound": [0.4, 0.6]}, "unknown key 'bound'"),
    ({"name": "z_B_2", "target": "z", "layer": 2, "site": "c3.1", "bounds": [0.4, 0.6], "value": 0.7}, "outside"),
    ({"name": "o", "target": "occupancy", "layer": 2, "bounds": [0.5, 1.2]}, "0 ≤ occupancy ≤ 1"),
    ({"name": "b", "target": "u_iso", "species": "Xe", "bounds": [0, 1]}, "unknown species 'Xe'"),
    ({"name": "t", "target": "z", "layer": 2, "site": "c3.1", "tie": "nobody"}, "unknown parameter 'nobody'"),
    ({"name": "t", "target": "z", "layer": 2, "site": "c3.1", "tie": "2*"}, "tie must read"),
    ({"name": "other", "target": "z", "layer": 2, "site": "c3.1", "bounds": [0.4, 0.6]}, "both move"),
    ({"name": "z_B_1", "target": "z", "layer": 1, "site": "c3.1", "bounds": [0.4, 0.6]}, "used twice"),
    ({"name": "f", "target": "fraction", "layer": 1, "species": "Sr", "bounds": [0.5, 0.9]}, "sum to"),
    ({"name": "s", "target": "scale", "rod": [3, 3], "bounds": [0.1, 1]}, r"no measured rod \(3, 3\)"),
])
def test_bad_params_are_one_input_error(change, message):
    spec = {"param": [{"name": "z_B_1", "target": "z", "layer": 2, "site": "c3.1", "bounds": [0.45, 0.55]}, change]}
    if change.get("target") == "scale":
        spec["fit"] = {"scale": "none"}
    with pytest.raises(InputError, match=message):
        FitParameters(spec, FILM.nominal, RODS)


def test_bad_spec_and_error_models():
    with pytest.raises(InputError, match="at least one"):
        FitParameters({"param": []}, FILM.nominal, RODS)
    with pytest.raises(InputError, match="unknown top-level key"):
        FitParameters({"params": [PARAMS[0]]}, FILM.nominal, RODS)
    with pytest.raises(InputError, match="must be \"none\""):
        FitParameters({"param": [{"name": "s", "target": "scale", "bounds": [0.1, 1]}]}, FILM.nominal, RODS)
    with pytest.raises(InputError, match="state an error model"):
        sigma_from_model(np.ones(3), "I", "")
    with pytest.raises(InputError, match="counts"):
        sigma_from_model(np.ones(3), "F", "poisson")
    with pytest.raises(InputError, match="error model must be"):
        sigma_from_model(np.ones(3), "I", "relative:-1")
    np.testing.assert_allclose(sigma_from_model(np.array([4.0, 0.0]), "I", "poisson"), [2.0, 1.0])
    with pytest.raises(InputError, match="state an error model"):
        MeasuredPoints.from_points([0], RODS[:1], [0.5], [1.0], None, "I")


# ----------------------------------------------------------------- the command
def write_inputs(folder: Path, rods=RODS) -> dict[str, Path]:
    """The test film as .sur, its substrate as .bul, a plain data file (h k l I) and a PARAMS file."""
    from mamba_ctr.io.structure_formats import write_rod_cell

    paths = {"substrate": folder / "STO.bul", "structure": folder / "film.sur", "data": folder / "rods.txt",
             "params": folder / "params.toml"}
    write_rod_cell(paths["substrate"], substrate())
    write_rod_cell(paths["structure"], atoms().with_cell((A, A, 12.0, 90.0, 90.0, 90.0)))
    rng = np.random.default_rng(0)
    lines = []
    for h, k in rods:
        for L in np.sort(rng.uniform(0.3, 2.7, 25)):
            lines.append(f"{h} {k} {float(L)!r} {float(1e-3 * (1 + 5 * np.cos(3 * L)**2) * (h + k + 1))!r}")
    paths["data"].write_text("\n".join(lines) + "\n")
    paths["params"].write_text('[fit]\nscale = "global"\n\n[[param]]\nname = "z_B_2"\ntarget = "z"\nlayer = 2\n'
                               'species = "Al"\nbounds = [0.45, 0.56]\n\n[[param]]\nname = "beta"\n'
                               'target = "beta"\nbounds = [0.0, 0.3]\n')
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


def test_fit_through_the_command_line(tmp_path, monkeypatch, capsys):
    from mamba_ctr import cli, workflows

    if "fit" not in workflows.COMMANDS:  # until the dispatcher lists it
        monkeypatch.setattr(workflows, "COMMANDS", (*workflows.COMMANDS, "fit"))
    paths = write_inputs(tmp_path, rods=[*RODS[:2], (0.5, 0.5)])
    argv = ["fit", str(paths["data"]), "--structure", str(paths["structure"]), "--params", str(paths["params"]),
            "--substrate", str(paths["substrate"]), "--columns", "h,k,l,I", "--basis", "1,0,0,1",
            "--ions", "Sr=Sr2+,La=La3+", "--error-model", "relative:0.1", "--out", str(tmp_path / "out")]
    assert cli.main(argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "(1/2, 1/2)" in error and "--drop-rods" in error
    assert not (tmp_path / "out").exists()


def test_fit_with_the_lm_solver(tmp_path):
    """`--solver lm` fits like trf (the same minimum on noise-free data from the PARAMS start)."""
    from mamba_ctr.workflows import fit

    paths = write_inputs(tmp_path)
    common = {"data": paths["data"], "structure": paths["structure"], "params": paths["params"],
              "substrate": paths["substrate"], "columns": "h,k,l,I", "basis": ("1", "0", "0", "1"),
              "ions": {"Sr": "Sr2+", "La": "La3+"}, "error_model": "relative:0.1", "figures": False, "quiet": True}
    results = {s: fit.run(fit.Config(**common, solver=s, out=tmp_path / s)).report for s in ("trf", "lm")}
    assert results["lm"]["command"].count("--solver lm") == 1
    np.testing.assert_allclose(results["lm"]["chi2_red"], results["trf"]["chi2_red"], rtol=1e-3, atol=1e-9)
    with pytest.raises(InputError, match="solver"):
        fit.Config(**common, solver="newton", out=tmp_path / "x")
