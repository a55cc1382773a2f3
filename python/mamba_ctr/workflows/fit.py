"""`mamba-ctr fit DATA --structure FILE --params PARAMS.toml`: least-squares refinement of a structure file
against measured rods (docs/fit.md), with χ²_red, R1, parameter errors and correlations, the fitted structure
written back (XYZ and ROD .sur) and a figure per rod.

`mamba-ctr fit DATA --family FAMILY.toml [--start labels.json]` fits a structure family's parameters instead
(its structure file, substrate, cell, ions, reader settings and `[[param]]` entries; docs/families.md), from the
structure file's values or from a start such as the labels a network predicted (`mamba-ctr predict`'s
labels.json: parameter name → value, moved into the bounds).

Everything the user gives is read and checked before the output folder is touched; every file is written
atomically.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from .._backend import BACKENDS
from .._files import exclusive_lock, read_toml, write_bytes, write_csv, write_json, write_text
from .._version import __version__
from ..errors import InputError
from ._common import command_line, output_dir, progress, user_path

__all__ = ["Config", "FitReport", "run"]

OUTPUTS = ("fit.json", "fit.md", "points.csv", "params.toml", "structure_fit.xyz", "structure_fit.sur",
           "fit_rods.png")


@dataclass
class Config:
    data: Path = field(metadata={"help": "measured rods file", "positional": True})
    structure: Path | None = field(default=None, metadata={
        "help": "start structure: .xyz (needs --cell), .sur, .bul, .fit or .cif (or give --family)"})
    params: Path | None = field(default=None, metadata={"help": "PARAMS.toml naming what is free (docs/fit.md)"})
    family: Path | None = field(default=None, metadata={
        "help": "FAMILY.toml instead of --structure/--params/--substrate/--cell/--ions (docs/families.md)"})
    start: Path | None = field(default=None, metadata={
        "help": "with --family: JSON of parameter name → start value (e.g. predict's labels.json)"})
    substrate: Path | None = field(default=None, metadata={
        "help": "bulk cell of the semi-infinite substrate (.bul or .cif); none: a free-standing film"})
    cell: tuple[str, ...] = field(default=(), metadata={
        "help": "in-plane cell a,b of the structure in Å (XYZ files have none), e.g. 7.81,3.905"})
    ions: dict[str, str] = field(default_factory=dict, metadata={
        "help": "species → ion whose form factor is used, e.g. Sr=Sr2+,La=La3+"})
    format: str = field(default="plain", metadata={
        "help": "data file format", "choices": ("rod", "genx", "gsecars", "tdl", "ana", "plain")})
    columns: str = field(default="", metadata={
        "help": "column map of a plain file naming every column, e.g. h,k,l,I,skip (I or F says the quantity)"})
    skip_rows: int = field(default=0, metadata={"help": "lines to drop at the top of a plain file"})
    basis: tuple[str, ...] = field(default=(), metadata={
        "help": "in-plane basis transform (H, K) = M (h, k) as m00,m01,m10,m11, e.g. 1/2,0,0,1/2"})
    error_model: str = field(default="", metadata={
        "help": "σ when the file has none (or to replace it): poisson | relative:<f> | constant:<s>"})
    exclude_bragg: float = field(default=0.0, metadata={
        "help": "leave out points within this ΔL of a substrate Bragg peak (integer rods: L_Bragg + n·dL from the "
                "file, else integer L)"})
    drop_rods: bool = field(default=False, metadata={
        "help": "leave out rods the structure's cell cannot produce (e.g. half-order rods of a 2×1 cell) "
                "instead of stopping; the outputs list them"})
    n_starts: int = field(default=1, metadata={"help": "local fits; start 0 is the given structure"})
    seed: int = field(default=0, metadata={"help": "key of the random starts"})
    spread: float = field(default=0.25, metadata={
        "help": "random starts move each parameter by up to ± spread/2 of its bound width"})
    max_nfev: int = field(default=200, metadata={"help": "residual evaluations per local fit"})
    solver: str = field(default="trf", metadata={
        "help": "local solver: trf (scipy's trust region reflective, for any start) or lm (bounded "
                "Levenberg–Marquardt, faster from a close start such as a network's prediction)",
        "choices": ("trf", "lm")})
    backend: str = field(default="auto", metadata={"help": "kernel backend", "choices": ("auto", *BACKENDS)})
    figures: bool = field(default=True, metadata={"help": "draw a figure per rod"})
    out: Path = field(default=Path("mamba-ctr-fit"), metadata={"help": "output directory"})
    overwrite: bool = field(default=False, metadata={"help": "replace existing outputs"})
    quiet: bool = field(default=False, metadata={"help": "no progress bar"})

    def __post_init__(self) -> None:
        self.data = Path(self.data)
        self._check_sources()
        for name in ("data", "structure", "params", "family", "start"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, Path(value))
                if not getattr(self, name).is_file():
                    raise InputError(f"{name}: no such file {getattr(self, name)}")
        if self.substrate is not None:
            self.substrate = Path(self.substrate)
            if not self.substrate.is_file():
                raise InputError(f"substrate: no such file {self.substrate}")
        self.out = output_dir(self.out)
        if self.cell and len(self.cell) != 2:
            raise InputError(f"cell must be two lengths a,b in Å, got {','.join(self.cell)!r}")
        if self.basis and len(self.basis) != 4:
            raise InputError(f"basis must be four entries m00,m01,m10,m11, got {','.join(self.basis)!r}")
        for name in ("n_starts", "max_nfev"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be an integer ≥ 1, got {value!r}")
        if not (math.isfinite(self.exclude_bragg) and 0 <= self.exclude_bragg < 0.5):
            raise InputError(f"exclude_bragg must lie in [0, 0.5) (a ΔL), got {self.exclude_bragg!r}")
        if not 0 < self.spread <= 1:
            raise InputError(f"spread must lie in (0, 1], got {self.spread!r}")
        if self.solver not in ("trf", "lm"):
            raise InputError(f"solver must be trf or lm, got {self.solver!r}")
        if self.format == "plain" and not self.columns and self.family is None:
            raise InputError("format plain needs --columns naming every column, e.g. h,k,l,I,skip")

    def _check_sources(self) -> None:
        """--family, or --structure and --params (not both kinds)."""
        if self.family is None:
            missing = [f"--{name}" for name in ("structure", "params") if getattr(self, name) is None]
            if missing:
                raise InputError(f"give {' and '.join(missing)} (or --family FAMILY.toml)")
            if self.start is not None:
                raise InputError("--start needs --family (a PARAMS file takes start values as value = ...)")
            return
        given = [f"--{name}" for name in ("structure", "params", "substrate") if getattr(self, name) is not None]
        given += [f"--{name}" for name in ("cell", "ions") if getattr(self, name)]
        if given:
            raise InputError(f"--family gives the structure, PARAMS, substrate, cell and ions: drop {', '.join(given)}")


@dataclass
class FitReport:
    """What `run` returns: the report (also in fit.json), the written files and the text the CLI prints."""

    report: dict[str, Any]
    files: dict[str, Path]
    text: str

    def summary(self) -> str:
        return self.text


# ------------------------------------------------------------------ inputs
@dataclass
class _Inputs:
    film: Any            # physics.film_from_atoms.AtomFilm
    simulator: Any       # measured_sim.MeasuredSimulator
    points: Any          # baselines.structure_fit.MeasuredPoints
    params: Any          # physics.structure_params.FitParameters
    params_bytes: bytes
    dropped: list[str]
    near_bragg: int
    history: list[str]


def _read_inputs(config: Config) -> _Inputs:
    """Read and check every input; nothing is written."""
    from ..baselines.structure_fit import MeasuredPoints
    from ..io.ctr_formats import read_rods
    from ..io.family_file import read_measured
    from ..io.measured import format_key
    from ..io.structure_formats import read_structure
    from ..measured_sim import MeasuredSimulator
    from ..physics.film_from_atoms import build_film
    from ..physics.grid import SRTIO3_A
    from ..physics.structure_params import FitParameters

    family = None
    if config.family is not None:
        from ..io.family_file import read_family

        with user_path(config.family, "read"):
            family = read_family(config.family)
    with user_path(config.data, "read"):
        if family is not None and not config.columns and config.format == "plain":
            rods = read_measured(config.data, family.source["reader"])
        else:
            rods = read_rods(config.data, config.format, columns=config.columns or None, skip_rows=config.skip_rows)
            if config.basis:
                rods = rods.transform_basis([config.basis[:2], config.basis[2:]])
    rods, near_bragg = _without_bragg_points(rods, config.exclude_bragg)
    if family is not None:
        film = family.film
        reference = (film.a / family.multiple[0], film.b / family.multiple[1])
    else:
        cell = _floats(config.cell, "cell") if config.cell else None
        assert config.structure is not None  # Config checked: --structure or --family
        with user_path(config.structure, "read"):
            atoms = read_structure(config.structure)
            substrate = read_structure(config.substrate) if config.substrate is not None else None
        film = build_film(atoms, substrate, cell=cell, ions=config.ions or None)
        reference = (substrate.cell[0], substrate.cell[1]) if substrate is not None and substrate.cell else (
            SRTIO3_A, SRTIO3_A)
    simulator = MeasuredSimulator(film, rods, reference_cell=reference, on_unproducible="skip",
                                  backend=config.backend, threads=1)
    dropped = [format_key(key) for key in simulator.unproducible]
    if dropped and not config.drop_rods:
        raise InputError(f"the structure's in-plane cell ({film.a:g} × {film.b:g} Å) cannot produce rods "
                         f"{', '.join(dropped)}: give a structure with a larger cell, or --drop-rods to leave them out")
    points = MeasuredPoints.from_simulator(simulator, config.error_model)
    if family is not None:
        assert config.family is not None
        with user_path(config.family, "read"):
            params_bytes = config.family.read_bytes()
        spec = _family_spec(family, config.start)
        source = config.family.name
    else:
        assert config.params is not None
        with user_path(config.params, "read"):
            params_bytes = config.params.read_bytes()
        spec, source = read_toml(config.params), config.params.name
    params = FitParameters(spec, film.nominal, points.rods, source=source)
    return _Inputs(film, simulator, points, params, params_bytes, dropped, near_bragg, list(rods.history))


def _family_spec(family, start: Path | None) -> dict:
    """The family's PARAMS table (label keys dropped), with start values from a JSON mapping moved into bounds."""
    from ..io.family_file import params_table

    values: dict[str, float] = {}
    if start is not None:
        with user_path(start, "read"):
            try:
                values = json.loads(start.read_text(encoding="utf-8"))
            except json.JSONDecodeError as error:
                raise InputError(f"{start}: not JSON ({error.msg} at line {error.lineno})") from None
        if not isinstance(values, dict) or not all(isinstance(v, (int, float)) for v in values.values()):
            raise InputError(f"{start}: expected a JSON object of parameter name → number")
        unknown = sorted(set(values) - set(family.params.names))
        if unknown:
            raise InputError(f"{start}: {unknown[0]!r} is not a free parameter of family {family.name!r} "
                             f"({', '.join(family.params.names[:6])}, …)")
    spec = params_table(family.source)
    for entry in spec["param"]:
        if entry["name"] in values:
            low, high = entry["bounds"]
            entry["value"] = float(min(max(values[entry["name"]], low), high))
    return spec


def _without_bragg_points(rods, window: float):
    """(rods without the points within `window` (ΔL) of a Bragg peak of an integer rod, how many were left out)."""
    if window <= 0:
        return rods, 0
    near = np.zeros(rods.n_points, dtype=bool)
    for r, (H, K) in enumerate(rods.rod_keys):
        if H.denominator != 1 or K.denominator != 1:
            continue
        mine = rods.rod == r
        l_bragg = rods.l_bragg[r] if rods.l_bragg is not None and np.isfinite(rods.l_bragg[r]) else 0.0
        dl = rods.dl[r] if rods.dl is not None and np.isfinite(rods.dl[r]) else 1.0
        offset = (rods.l[mine] - l_bragg) / dl
        near[mine] = np.abs(offset - np.round(offset)) * dl < window
    keep = ~near
    if np.any(np.bincount(rods.rod[keep], minlength=len(rods.rod_keys)) == 0):
        raise InputError(f"exclude_bragg {window:g} leaves a rod without points")
    arrays = {name: getattr(rods, name)[keep] for name in ("h", "k", "l", "value", "rod")}
    if rods.sigma is not None:
        arrays["sigma"] = rods.sigma[keep]
    history = (*rods.history, f"left out {int(near.sum())} points within ΔL = {window:g} of a Bragg peak")
    return dataclasses.replace(rods, **arrays, history=history), int(near.sum())


def _floats(values: tuple[str, ...], name: str) -> tuple[float, float]:
    try:
        numbers = tuple(float(Fraction(v.strip())) for v in values)
    except (ValueError, ZeroDivisionError):
        raise InputError(f"{name} must be numbers, got {','.join(values)!r}") from None
    if not all(math.isfinite(v) and v > 0 for v in numbers):
        raise InputError(f"{name} must be positive lengths in Å, got {','.join(values)!r}")
    return numbers[0], numbers[1]


# --------------------------------------------------------------------- run
def run(config: Config) -> FitReport:
    """Read and check everything, fit, write the outputs into config.out (see docs/fit.md)."""
    from ..baselines.structure_fit import fit_structure
    from ..reconstruct.refine import SolverOptions

    inputs = _read_inputs(config)
    out = config.out
    existing = [name for name in OUTPUTS if (out / name).exists()]
    if existing and not config.overwrite:
        raise InputError(f"output exists: {out / existing[0]} (pass --overwrite to replace)")
    fit = fit_structure(inputs.params, inputs.points, inputs.simulator, n_starts=config.n_starts, seed=config.seed,
                        spread=config.spread, options=SolverOptions(max_nfev=config.max_nfev, method=config.solver),
                        progress=progress(config.quiet))
    report = _report(config, inputs, fit)
    with user_path(out):
        out.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(out, "mamba-ctr fit"):
            files = _write(config, inputs, fit, report)
    return FitReport(report, files, _summary(report, files))


def _write(config: Config, inputs: _Inputs, fit, report: dict) -> dict[str, Path]:
    from ..io.structure_formats import write_rod_cell, write_xyz

    out = config.out
    files = {"report": out / "fit.json", "markdown": out / "fit.md", "points": out / "points.csv",
             "params": out / ("family.toml" if config.family is not None else "params.toml"),
             "xyz": out / "structure_fit.xyz", "sur": out / "structure_fit.sur"}
    write_json(files["report"], report)
    write_text(files["markdown"], _markdown(report))
    write_csv(files["points"], _point_rows(fit))
    write_bytes(files["params"], inputs.params_bytes)
    atoms = _fitted_atoms(inputs.film, fit)
    write_xyz(files["xyz"], atoms)
    write_rod_cell(files["sur"], atoms)
    if config.figures:
        from ..plots._base import save
        from ..plots.fit import plot_fit_rods, rod_label
        from ..plots.measured import measured_rods_figure

        p = fit.points
        rows = range(len(p.rods))
        overview = measured_rods_figure(
            [rod_label(hk) for hk in p.rods], [p.L[r, p.used[r]] for r in rows],
            [p.F[r, p.used[r]] ** 2 for r in rows],
            {"start": [fit.I_start[r, p.used[r]] for r in rows], "fit": [fit.I_fit[r, p.used[r]] for r in rows]},
            title=f"measured vs calculated: χ²_red {fit.before.chi2_red:.3g} → {fit.after.chi2_red:.3g}, "
                  f"R1 {fit.before.r1:.3f} → {fit.after.r1:.3f}")
        files["overview"] = out / "fit_rods.png"
        save(overview, files["overview"])
        for path in plot_fit_rods(p, fit.I_fit, out, I_start=fit.I_start):
            files[path.stem] = path
    return files


def _fitted_atoms(film, fit):
    """The fitted structure as atoms (file order), with fitted Debye–Waller factors."""
    atoms = film.atoms(fit.structure, title=f"fitted by mamba-ctr {__version__}")
    scatterers = fit.structure.model.scatterers
    new = [dataclasses.replace(atom, u_iso=scatterers[film.site_species[g][m]].u_iso, b_given=None)
           for atom, g, m in zip(atoms.atoms, film.atom_group, film.atom_member, strict=True)]
    return dataclasses.replace(atoms, atoms=tuple(new))


# ------------------------------------------------------------------ report
def _report(config: Config, inputs: _Inputs, fit) -> dict[str, Any]:
    params, points = fit.params, fit.points
    moved = fit.moved()
    parameters = []
    for q, p in enumerate(params.parameters):
        parameters.append({
            "name": p.name, "target": p.target, "where": p.where, "start": fit.values_start[q],
            "value": fit.values[q], "error": fit.errors[q], "moved_sigma": moved[q],
            "lower": p.lower, "upper": p.upper,
            "at_bound": p.tie is None and _at_bound(fit.values[q], p.lower, p.upper),
            "tie": None if p.tie is None else _tie_text(p.tie),
        })
    rods = [{"rod": list(hk), "cell_hk": list(inputs.simulator.rods[r].hk), "points": int(points.used[r].sum()),
             "chi2_red_start": fit.before.chi2_red_rods[r], "chi2_red": fit.after.chi2_red_rods[r],
             "r1_start": fit.before.r1_rods[r], "r1": fit.after.r1_rods[r], "scale_start": fit.scales_start[r],
             "scale": fit.scales[r]} for r, hk in enumerate(points.rods)]
    return {
        "created_by": f"mamba-ctr {__version__}",
        "command": _command(config),
        "data": str(config.data), "structure": str(config.structure), "params": str(config.params),
        "family": None if config.family is None else str(config.family),
        "start": None if config.start is None else str(config.start),
        "substrate": None if config.substrate is None else str(config.substrate),
        "data_history": inputs.history,
        "quantity_in_file": points.quantity,
        "sigma": "from the file" if points.error_model == "file" else f"error model {points.error_model}",
        "residual": "(|F|_calc − |F|_obs) / σ_F, |F|_calc = √(scale · I_calc)",
        "scale": params.scale_mode if not any(p.target == "scale" for p in params.parameters) else "fitted",
        "dropped_rods": inputs.dropped,
        "excluded_near_bragg": {"window_L": config.exclude_bragg, "points": inputs.near_bragg},
        "n_points": fit.n_points, "n_free_parameters": params.size, "n_closed_form_scales": fit.n_scales,
        "dof": fit.dof,
        "chi2_red_start": fit.before.chi2_red, "chi2_red": fit.after.chi2_red,
        "r1_start": fit.before.r1, "r1": fit.after.r1,
        "starts": {"n": len(fit.costs), "seed": config.seed, "spread": config.spread, "costs": fit.costs.tolist(),
                   "best": fit.best_start},
        "solver": {"success": fit.success, "message": fit.message},
        "model_evaluations": fit.n_simulated, "seconds": fit.seconds,
        "evaluations_per_second": fit.evaluations_per_second,
        "parameters": parameters, "rods": rods,
        "correlation": {"names": list(params.names), "matrix": fit.correlation.tolist()},
    }


def _at_bound(value: float, lower: float, upper: float) -> bool:
    """True within 1e-9 of the bound width from either bound (where the solver stopped on it)."""
    tolerance = 1e-9 * (upper - lower)
    return bool(value - lower <= tolerance or upper - value <= tolerance)


def _tie_text(tie) -> str:
    """"z_B_4", "2*z_B_4", "z_B_4 - 0.1": a tie as PARAMS writes it."""
    text = tie.other if tie.factor == 1 else f"{tie.factor:g}*{tie.other}"
    return text if tie.offset == 0 else f"{text} {'+' if tie.offset > 0 else '-'} {abs(tie.offset):g}"


def _command(config: Config) -> str:
    return command_line("fit", config, "data")


def _point_rows(fit) -> list[dict[str, Any]]:
    rows = []
    p = fit.points
    for r, hk in enumerate(p.rods):
        for i in np.flatnonzero(p.used[r]):
            F_start, F_fit = math.sqrt(max(fit.I_start[r, i], 0)), math.sqrt(max(fit.I_fit[r, i], 0))
            rows.append({"H": hk[0], "K": hk[1], "L": p.L[r, i], "F_obs": p.F[r, i], "sigma_F": p.sigma[r, i],
                         "F_start": F_start, "F_fit": F_fit, "residual": (F_fit - p.F[r, i]) / p.sigma[r, i]})
    return rows


def _markdown(report: dict[str, Any]) -> str:
    lines = [f"# Structure fit ({report['created_by']})", "", "```", report["command"], "```", "",
             f"* data: `{report['data']}` ({report['n_points']} points, quantity {report['quantity_in_file']} in the "
             f"file); σ {report['sigma']}; residual {report['residual']}",
             f"* structure: `{report['structure']}`; substrate: `{report['substrate']}`",
             f"* scale: {report['scale']}; free parameters {report['n_free_parameters']}, "
             f"closed-form scales {report['n_closed_form_scales']}, dof {report['dof']}"]
    if report["dropped_rods"]:
        lines.append(f"* rods left out (the structure's cell cannot produce them): {', '.join(report['dropped_rods'])}")
    if report["excluded_near_bragg"]["points"]:
        lines.append(f"* {report['excluded_near_bragg']['points']} points within ΔL = "
                     f"{report['excluded_near_bragg']['window_L']:g} of a Bragg peak left out")
    lines += [f"* χ²_red {report['chi2_red_start']:.4g} → **{report['chi2_red']:.4g}**; "
              f"R1 {report['r1_start']:.4f} → **{report['r1']:.4f}**",
              f"* {report['starts']['n']} start(s) (seed {report['starts']['seed']}), best {report['starts']['best']}; "
              f"{report['model_evaluations']} model evaluations in {report['seconds']:.1f} s = "
              f"**{report['evaluations_per_second']:.0f} evaluations/s**; solver: {report['solver']['message']}",
              "", "## Parameters", "",
              "| name | target | group | start | fitted | σ | moved (σ) | bounds | tie |",
              "|---|---|---|---:|---:|---:|---:|---|---|"]
    for p in report["parameters"]:
        bounds = "" if p["tie"] else f"[{p['lower']:.6g}, {p['upper']:.6g}]" + (" **at bound**" if p["at_bound"]
                                                                               else "")
        lines.append(f"| {p['name']} | {p['target']} | {p['where']} | {p['start']:.6g} | {p['value']:.6g} | "
                     f"{p['error']:.2g} | {p['moved_sigma']:.1f} | {bounds} | {p['tie'] or ''} |")
    lines += ["", "## Rods", "", "| rod | points | χ²_red start | χ²_red | R1 start | R1 | scale |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for r in report["rods"]:
        lines.append(f"| ({r['rod'][0]:g}, {r['rod'][1]:g}) | {r['points']} | {r['chi2_red_start']:.4g} | "
                     f"{r['chi2_red']:.4g} | {r['r1_start']:.4f} | {r['r1']:.4f} | {r['scale']:.4g} |")
    strong = _strong_correlations(report["correlation"])
    if strong:
        lines += ["", "## Correlations above 0.8", ""] + [f"* {a} – {b}: {c:+.2f}" for a, b, c in strong]
    return "\n".join(lines) + "\n"


def _strong_correlations(correlation: dict[str, Any], threshold: float = 0.8) -> list[tuple[str, str, float]]:
    names, matrix = correlation["names"], np.asarray(correlation["matrix"], dtype=np.float64)
    return [(names[i], names[j], float(matrix[i, j])) for i in range(len(names)) for j in range(i + 1, len(names))
            if np.isfinite(matrix[i, j]) and abs(matrix[i, j]) > threshold]


def _summary(report: dict[str, Any], files: dict[str, Path]) -> str:
    moved = sorted((p for p in report["parameters"] if np.isfinite(p["moved_sigma"])),
                   key=lambda p: -abs(p["moved_sigma"]))[:5]
    lines = [f"fit: {report['n_points']} points, {report['n_free_parameters']} free parameters, σ {report['sigma']}",
             f"χ²_red {report['chi2_red_start']:.4g} → {report['chi2_red']:.4g}, "
             f"R1 {report['r1_start']:.4f} → {report['r1']:.4f}",
             f"{report['evaluations_per_second']:.0f} model evaluations/s ({report['model_evaluations']} in "
             f"{report['seconds']:.1f} s)"]
    if report["dropped_rods"]:
        lines.append(f"left out (cell cannot produce): {', '.join(report['dropped_rods'])}")
    if moved:
        lines.append("moved most: " + ", ".join(f"{p['name']} {p['moved_sigma']:+.1f}σ" for p in moved))
    lines.append(f"report: {files['markdown']}")
    return "\n".join(line for line in lines if line)
