"""`mamba-ctr predict` for a model of a structure family (FAMILY.toml): a measured CTR file in, a structure out.

The measured rods are read with the family's reader settings (or the ones given), put on the model's uniform L
grid (`nn.inputs.rods_on_grid`: ln I interpolated, unmeasured stretches masked; rods the model lacks are left out
and listed), and the scale-free network predicts the film field U. Then:

* forward consistency: |U + S|² against the input on the measured grid points (scale fitted; R1 flagged above the
  calibrated threshold, the scale never: measured data are on any scale);
* labels: the family's parameters fitted to U (`reconstruct.family_fit`), i.e. the predicted structure;
* the predicted structure through the forward model at the measured points: R1 and χ²_red per rod and overall
  with one global scale (`measured_sim.agreement`; σ from `error_model` when the file has none);
* files in out: prediction.json (all of the above), labels.json (name → value: the `--start` of
  `mamba-ctr fit --family`), family/ (the model's family as a self-contained FAMILY.toml with its structure
  files: the `--family` of that fit), structure_predicted.xyz, prediction.h5 (grid, intensity, mask, film_field),
  and
  the figures rods.png (measured vs the predicted structure), field.png and density_slices.png (the density
  needs a grid from L = ΔL: FAMILY.toml's [grid] L = [0, …]; otherwise the report says why it is missing).
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from .. import _files
from .._version import __version__
from ..errors import InputError
from ..physics.family import StructureFamily
from ..reconstruct.calibration import consistency_threshold
from ._common import Result, user_path

__all__ = ["run_family"]


def run_family(config: Any, checkpoint: Any, family: StructureFamily) -> Result:
    """Predict the structure of the measured file `config.input` with a family model (module docstring)."""
    from ..io.family_file import read_measured
    from ..nn.inputs import InputTransform, rods_on_grid
    from ..nn.predict import check_prediction, predict_field

    if not InputTransform.of_checkpoint(checkpoint).is_scale_free:
        raise InputError(f"model {config.model} was not trained with the scale-free input: it cannot take "
                         "measured rods on an unknown scale")
    reader = _reader(config, family)
    with user_path(config.input, "read"):
        rods = read_measured(config.input, reader)
    intensity, mask, left_out = rods_on_grid(rods, family.grid, family.multiple)
    if not mask.any():
        raise InputError(f"{config.input}: none of its points lies on the model's grid (rods {_rod_names(family)}, "
                         f"L {family.grid.L[0]:g}…{family.grid.L[-1]:g}); check the basis ({reader['basis']}) "
                         "and the L range")
    started = time.perf_counter()
    field_ = predict_field(checkpoint, intensity[None], mask=mask[None])
    network_s = time.perf_counter() - started
    threshold, threshold_source = consistency_threshold(config.calibration, checkpoint)
    consistency = check_prediction(checkpoint, intensity[None], field_, mask[None], threshold)
    started = time.perf_counter()
    from ..reconstruct.family_fit import fit_family_fields

    fitted = fit_family_fields(field_, family, progress=False)[0]
    labels_s = time.perf_counter() - started
    structure = family.structures(fitted.parameters[None])
    agreement, simulator, sigma_source = _agreement(config, family, rods, structure)
    report = _report(config, family, reader, left_out, mask, consistency, threshold_source, fitted, agreement,
                     simulator, sigma_source, network_s, labels_s)
    if config.calibration is not None:
        report["intervals"] = _intervals(config, checkpoint, family, intensity, mask)
    files = _write(config, family, report, fitted.labels, structure, intensity, mask, field_, simulator, agreement)
    return Result(report, _summary(report, files))


def _intervals(config: Any, checkpoint: Any, family: StructureFamily, intensity: np.ndarray,
               mask: np.ndarray) -> dict[str, Any]:
    """Calibrated intervals of every label: test-time draws around the input (nn.uncertainty), the calibration's
    half-widths around the draws' mean."""
    from ..nn.uncertainty import predict_with_uncertainty
    from ..reconstruct.calibration import read_calibration
    from ..reconstruct.family_fit import family_labels

    calibration = read_calibration(config.calibration)
    started = time.perf_counter()
    result = predict_with_uncertainty(checkpoint, intensity[None], mask[None], calibration, counts=config.counts,
                                      extract=lambda U: family_labels(U, family, progress=False))
    labels = {}
    for name in result.labels:
        low, high = result.label_interval(name)
        labels[name] = {"mean": float(result.labels[name][0]), "low": float(low[0]), "high": float(high[0])}
    return {"calibration": str(config.calibration), "level": calibration.level, "counts": config.counts,
            "draws": result.settings.draws, "seconds": time.perf_counter() - started, "labels": labels}


def _reader(config: Any, family: StructureFamily) -> dict:
    reader = dict(family.source["reader"])
    if config.format:
        reader.update(format=config.format, columns=config.columns, skip_rows=0)
    elif config.columns:
        reader["columns"] = config.columns
    if config.basis:
        if len(config.basis) != 4:
            raise InputError(f"basis must be four entries m00,m01,m10,m11, got {','.join(config.basis)!r}")
        reader["basis"] = list(config.basis)
    if reader["format"] == "plain" and not reader.get("columns"):
        raise InputError("a plain file needs --columns naming every column, e.g. h,k,l,I,skip")
    return reader


def _rod_names(family: StructureFamily) -> str:
    ma, mb = family.multiple
    return ", ".join(f"({h / ma:g}, {k / mb:g})" for h, k in zip(family.grid.h, family.grid.k, strict=True))


def _agreement(config: Any, family: StructureFamily, rods, structure):
    """Agreement of the predicted structure with every measured point the film produces (global scale)."""
    from ..baselines.structure_fit import sigma_from_model
    from ..measured_sim import MeasuredSimulator, agreement

    reference = (family.film.a / family.multiple[0], family.film.b / family.multiple[1])
    simulator = MeasuredSimulator(family.film, rods, reference_cell=reference, on_unproducible="skip", threads=1)
    I_obs, sigma = simulator.observed()
    source = "file"
    if sigma is None or config.error_model:
        sigma, source = sigma_from_model(I_obs, "I", config.error_model or "relative:0.1"), (
            config.error_model or "relative:0.1")
    I_calc = simulator.intensity(structure)[0]
    return agreement(I_obs, sigma, I_calc, simulator.rod_of_point, "global"), simulator, source


def _report(config, family, reader, left_out, mask, consistency, threshold_source, fitted, agreement, simulator,
            sigma_source, network_s, labels_s) -> dict[str, Any]:
    from ..io.measured import format_key

    rods = [format_key(rod.key) for rod in simulator.rods]
    return {
        "model": str(config.model), "input": str(config.input), "family": family.name,
        "mamba_ctr_version": __version__, "reader": reader,
        "grid": {"rods": _rod_names(family), "L": [float(family.grid.L[0]), float(family.grid.L[-1])],
                 "points": int(family.grid.n_L), "measured_points_on_grid": int(mask.sum())},
        "rods_left_out": left_out,
        "consistency": {"scale": float(consistency.scale[0]), "r1": float(consistency.r1[0]),
                        "flagged": bool(consistency.flagged[0]), "r1_threshold": consistency.r1_threshold,
                        "r1_threshold_source": threshold_source},
        "labels": {name: float(value) for name, value in fitted.labels.items()},
        "label_fit": {"cost": fitted.cost, "success": fitted.success, "seconds": fitted.time},
        "agreement": {"scale": "global", "error_model": sigma_source, "points": int(simulator.n_points),
                      "r1": agreement.r1, "chi2_red": agreement.chi2_red,
                      "rods": {rod: {"points": int(n), "r1": float(r1), "chi2_red": float(chi2)}
                               for rod, n, r1, chi2 in zip(rods, agreement.n_rods, agreement.r1_rods,
                                                           agreement.chi2_red_rods, strict=True)}},
        "seconds": {"network": network_s, "labels": labels_s},
    }


def _write(config, family, report, labels, structure, intensity, mask, field_, simulator, agreement) -> list:
    from ..io.family_file import write_family
    from ..io.structure_formats import write_xyz

    out = config.out
    with user_path(out):
        out.mkdir(parents=True, exist_ok=True)
        files = [out / "prediction.json", out / "labels.json", out / "structure_predicted.xyz",
                 out / "prediction.h5", write_family(family, out / "family")]
        if config.figures:
            figures = _figures(out, family, field_, simulator, agreement, report)
        _files.write_json(files[0], report)
        _files.write_json(files[1], {name: float(value) for name, value in labels.items()})
        write_xyz(files[2], family.film.atoms(structure, title=f"predicted by mamba-ctr {__version__} "
                                                              f"({config.model})"))
        _write_hdf5(files[3], family, intensity, mask, field_, report)
    return files + (figures if config.figures else [])


def _write_hdf5(path, family, intensity, mask, field_, report) -> None:
    import h5py

    from ..data.hdf5 import write_grid

    with _files.atomic_path(path) as temporary, h5py.File(temporary, "w") as f:
        write_grid(f.create_group("grid"), family.grid)
        f.create_dataset("intensity", data=intensity[None])
        f.create_dataset("mask", data=mask[None])
        f.create_dataset("film_field", data=field_)
        f.attrs.update({"created_by": f"mamba-ctr {__version__}", "preset": json.dumps(family.to_dict()),
                        "report": json.dumps(report)})


def _figures(out, family, field_, simulator, agreement, report) -> list:
    from ..io.measured import format_key
    from ..plots import plot_density_slices, plot_field_rods
    from ..plots._base import save
    from ..plots.density import crop_to_film
    from ..plots.measured import measured_rods_figure
    from ..reconstruct import density_slices

    paths = [out / "rods.png", out / "field.png", out / "density_slices.png"]
    data_L = simulator.data.l[simulator.points]
    I_obs = agreement.F_obs**2
    I_calc = agreement.F_calc**2
    rows = [simulator.rod_of_point == r for r in range(len(simulator.rods))]
    figure = measured_rods_figure([format_key(rod.key) for rod in simulator.rods], [data_L[m] for m in rows],
                                  [I_obs[m] for m in rows], {"predicted structure": [I_calc[m] for m in rows]},
                                  title=f"{report['family']}: network prediction through the forward model, "
                                        f"R1 {report['agreement']['r1']:.3f}")
    save(figure, paths[0])
    plot_field_rods(family.grid, field_[0], path=paths[1])
    try:
        x, z, rho = density_slices(field_[:1], family.grid)
    except InputError as error:  # a grid that does not reach down to L = ΔL: no density (said in the report)
        report["density"] = f"not drawn: {error}"
        return paths[:2]
    z, slices = crop_to_film(z, rho[0])
    plot_density_slices(x, z, slices, path=paths[2], title="predicted film density", name="prediction")
    report["density"] = str(paths[2].name)
    return paths


def _summary(report: dict, files: list) -> str:
    agreement, consistency = report["agreement"], report["consistency"]
    lines = [f"{report['family']}: {report['grid']['measured_points_on_grid']} measured grid points on "
             f"{len(agreement['rods'])} rods; files in {files[0].parent}",
             f"  forward consistency |U + S|² vs input: R1 {consistency['r1']:.3f}"
             + (f" (above {consistency['r1_threshold']:.3g}, flagged: check the prediction)"
                if consistency["flagged"] else f" (≤ {consistency['r1_threshold']:.3g})"),
             f"  predicted structure at the measured points: R1 {agreement['r1']:.3f}, χ²_red "
             f"{agreement['chi2_red']:.3g} (global scale, σ {agreement['error_model']})"]
    if report["rods_left_out"]:
        lines.append(f"  rods the model does not have (left out): {', '.join(report['rods_left_out'])}")
    options = "" if agreement["error_model"] == "file" else f" --error-model {agreement['error_model']}"
    options += " --drop-rods" if report["rods_left_out"] else ""
    lines.append(f"  refine: mamba-ctr fit {report['input']} --family {files[4]} --start {files[1]}{options}")
    return "\n".join(lines)
