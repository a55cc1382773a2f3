"""Every method on the same test structures, noise-free and noisy: mean R² per atom type and median time per
structure (compare.csv, compare.md, compare.png; issue 8).

Methods (labels of physics.md recovered from intensities alone):

* ``mamba``: the network's predicted film field → density → extracted labels (needs a model per preset);
* ``mamba+refine``: those labels as the start of a √I least-squares fit to the intensities (ML-initialised
  refinement; σ-weighted with a free scale per rod on noisy data);
* ``cobra``: COBRA phase retrieval from the nominal film, then the same extraction;
* ``lsq``: the classic fit of ln I from the nominal structure (as ROD/GenX users start);
* ``de``: differential evolution on ln I with a local polish (GenX's global search); slow, so it runs on the
  first `n_global` structures only.

The fits are given each structure's true number of film layers (they fit a fixed layer count); the network and
COBRA are not. Noise (`mamba_ctr.baselines.noise`): Poisson counts (each of `counts` at each rod's median point,
one condition per level) and lognormal per-rod scale errors of `rod_scale`, the same draw for every method.
Outputs: compare.csv,
compare.md, compare.png: mean R² per atom type (the paper's outlier rule) and median seconds per structure for
each method × preset × condition.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import _files
from .._checks import check_count
from .._version import __version__
from ..errors import InputError
from ..physics import presets
from ..physics.presets import PerovskitePreset
from ._common import GROUPS, TEST_SEED, THICKNESS, Result, output_dir, preset_name, progress, r2_cells, user_path

__all__ = ["METHODS", "Config", "run"]

METHODS = ("mamba", "mamba+refine", "cobra", "lsq", "de")


@dataclass
class Config:
    out: Path = field(default=Path("mamba-ctr-compare"), metadata={"help": "output directory"})
    presets: tuple[str, ...] = field(default=THICKNESS, metadata={
        "help": "comma-separated presets to compare on (names or aliases, e.g. paper-12L,paper-16L)"})
    n: int = field(default=20, metadata={"help": f"test structures per preset (seed {TEST_SEED}, indices [0, n))"})
    methods: tuple[str, ...] = field(default=METHODS, metadata={
        "help": f"comma-separated methods, a subset of {','.join(METHODS)}"})
    models: dict[str, str] = field(default_factory=dict, metadata={
        "help": "PRESET=MODEL[,...]: the model (shipped name, training directory or checkpoint) of each preset for "
                "the mamba methods"})
    counts: tuple[float, ...] = field(default=(1000.0,), metadata={
        "help": "noisy cases: comma-separated Poisson counts at each rod's median point, one condition each "
                "(e.g. 100,1000,10000,100000,1000000: the table of R² against count level)"})
    rod_scale: float = field(default=0.03, metadata={"help": "noisy case: lognormal per-rod scale spread"})
    n_global: int = field(default=3, metadata={"help": "structures for de (slow)"})
    noise_seed: int = field(default=0, metadata={"help": "seed of the noise"})
    quiet: bool = field(default=False, metadata={"help": "no progress bars"})

    def __post_init__(self) -> None:
        self.out = output_dir(self.out)
        self.presets, self.methods = tuple(map(preset_name, self.presets)), tuple(self.methods)
        self.models = {preset_name(name): str(model) for name, model in dict(self.models).items()}
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown or not self.methods:
            raise InputError(f"methods must be a non-empty subset of {', '.join(METHODS)}, got {self.methods}")
        check_count("n", self.n, 1)
        check_count("n_global", self.n_global, 0)
        check_count("noise_seed", self.noise_seed, 0)
        if any(m.startswith("mamba") for m in self.methods):
            missing = [p for p in self.presets if p not in self.models]
            if missing:
                raise InputError(f"the mamba methods need a model for every preset; none given for {missing} "
                                 f"(models: PRESET=MODEL, e.g. paper-12L=paper-12L)")
        self.counts = tuple(float(c) for c in self.counts)
        if not (self.counts and all(c > 0 for c in self.counts) and 0 <= self.rod_scale < 1):
            raise InputError(f"need counts > 0 (at least one) and 0 ≤ rod_scale < 1, got {self.counts!r}, "
                             f"{self.rod_scale!r}")


@dataclass
class _Case:
    preset: PerovskitePreset
    intensity: np.ndarray
    sigma: np.ndarray | None
    truth: dict[str, np.ndarray]
    n_film: np.ndarray
    model: str | None


def _mamba(case: _Case, config: Config, cache: dict) -> tuple[dict, np.ndarray]:
    from .. import models
    from ..nn.inputs import InputTransform
    from ..nn.predict import predict_field
    from ..reconstruct import extract_labels

    assert case.model is not None  # Config asks for a model per preset for the mamba methods
    if case.model not in cache:
        cache[case.model] = models.load(case.model)
    checkpoint = cache[case.model]
    started = time.perf_counter()
    field_ = predict_field(checkpoint, InputTransform.of_checkpoint(checkpoint).admissible(case.intensity))
    labels = extract_labels(field_, case.preset.grid, case.preset)
    seconds = (time.perf_counter() - started) / len(case.n_film)
    cache[("mamba", id(case))] = labels
    cache[("mamba seconds", id(case))] = np.full(len(case.n_film), seconds)
    return labels, np.full(len(case.n_film), seconds)


def _fit_groups(case: _Case, fit: Callable[[np.ndarray, int], Any], rows: np.ndarray | None = None
                ) -> tuple[dict, np.ndarray]:
    """Run a fit per group of equal film thickness; labels (n,) (NaN for rows not run) and seconds (n,)."""
    n = len(case.n_film)
    rows = np.arange(n) if rows is None else rows
    labels = {spec.name: np.full(n, np.nan) for spec in case.preset.label_specs()}
    seconds = np.full(n, np.nan)
    for n_film in np.unique(case.n_film[rows]):
        members = rows[case.n_film[rows] == n_film]
        batch = fit(members, int(n_film))
        for name, values in batch.labels.items():
            labels[name][members] = values
        seconds[members] = batch.values("time")
    return labels, seconds


def _fit_kwargs(case: _Case, members: np.ndarray) -> dict[str, Any]:
    if case.sigma is None:
        return {}
    return {"sigma": case.sigma[members], "weight_by_sigma": True, "scale": "rods"}


def _refine(case: _Case, config: Config, cache: dict) -> tuple[dict, np.ndarray]:
    from ..baselines import fit_intensities
    from ..reconstruct import fit_start
    from ..reconstruct.refine import REFINE_OPTIONS

    if ("mamba", id(case)) not in cache:
        _mamba(case, config, cache)
    started_labels = fit_start(cache[("mamba", id(case))], case.preset, true=case.truth)

    def fit(members: np.ndarray, n_film: int):
        start = {name: values[members] for name, values in started_labels.items()}
        return fit_intensities(case.intensity[members], case.preset, start=start, n_film=n_film, transform="sqrt",
                               options=REFINE_OPTIONS, progress=progress(config.quiet), **_fit_kwargs(case, members))

    labels, seconds = _fit_groups(case, fit)
    return labels, seconds + cache[("mamba seconds", id(case))]  # the network's share included


def _cobra(case: _Case, config: Config, cache: dict) -> tuple[dict, np.ndarray]:
    from ..baselines import cobra_labels

    batch, labels = cobra_labels(np.maximum(case.intensity, 0.0), case.preset, progress=progress(config.quiet))
    return labels, np.asarray(batch.seconds, dtype=np.float64)


def _lsq(case: _Case, config: Config, cache: dict) -> tuple[dict, np.ndarray]:
    from ..baselines import fit_intensities

    def fit(members: np.ndarray, n_film: int):
        return fit_intensities(np.maximum(case.intensity[members], 1e-30), case.preset, n_film=n_film,
                               transform="log", progress=progress(config.quiet), **_fit_kwargs(case, members))

    return _fit_groups(case, fit)


def _de(case: _Case, config: Config, cache: dict) -> tuple[dict, np.ndarray]:
    from ..baselines import fit_intensities

    rows = np.arange(min(config.n_global, len(case.n_film)))

    def fit(members: np.ndarray, n_film: int):
        return fit_intensities(np.maximum(case.intensity[members], 1e-30), case.preset, n_film=n_film,
                               transform="log", global_search=True, progress=progress(config.quiet),
                               **_fit_kwargs(case, members))

    return _fit_groups(case, fit, rows)


_RUNNERS = {"mamba": _mamba, "mamba+refine": _refine, "cobra": _cobra, "lsq": _lsq, "de": _de}


def _cases(config: Config, name: str) -> dict[str, _Case]:
    from ..baselines import NoiseModel, add_noise
    from ..simulate import simulate

    preset = presets.get(name)
    structures = preset.sample(config.n, TEST_SEED, 0)
    intensity = simulate(structures, preset.grid, dtype="float64").intensity
    truth = preset.labels(structures)
    n_film = preset.parameters(structures)["n_film"].astype(int)
    model = config.models.get(name)
    cases = {"noise-free": _Case(preset, intensity, None, truth, n_film, model)}
    for counts in config.counts:
        noisy = add_noise(intensity, preset.grid, NoiseModel(counts=counts, rod_scale=config.rod_scale,
                                                             seed=config.noise_seed))
        cases[_condition(config, counts)] = _Case(preset, noisy.intensity, noisy.sigma, truth, n_film, model)
    return cases


def _condition(config: Config, counts: float) -> str:
    """The noisy condition's name: "noisy" for the one default level, else "counts=1e+03"."""
    return "noisy" if len(config.counts) == 1 else f"counts={counts:.0e}"


def run(config: Config) -> Result:
    """Run every method on every preset and condition, writing the tables after each; `Result.value`: the rows."""
    from ..reconstruct import r2_scores

    rows: list[dict[str, Any]] = []
    cache: dict = {}
    for name in config.presets:
        for condition, case in _cases(config, name).items():
            for method in config.methods:
                labels, seconds = _RUNNERS[method](case, config, cache)
                done = np.isfinite(seconds)
                truth = {k: v[done] for k, v in case.truth.items()}
                _, per_group, outliers = r2_scores(truth, {k: v[done] for k, v in labels.items()}, case.preset)
                row = {"preset": name, "condition": condition, "method": method, "n": int(done.sum()),
                       **{f"R2_{g}": per_group.get(g, math.nan) for g in GROUPS},
                       "outliers": int(sum(outliers.values())),
                       "median_s": float(np.median(seconds[done])) if done.any() else math.nan,
                       "mamba_ctr_version": __version__}
                rows.append(row)
                print(f"[compare] {name:<20} {condition:<10} {method:<13} n={row['n']:<3} "
                      + " ".join(f"{g} {per_group[g]:.3f}" for g in per_group)
                      + f"  {row['median_s']:.3f} s/structure", flush=True)
                with user_path(config.out):
                    table = _write(config, rows)
    return Result(rows, table)


def _write(config: Config, rows: list[dict[str, Any]]) -> str:
    """compare.csv, compare.md and compare.png of the rows so far; returns the Markdown table."""
    from ..plots import plot_method_comparison

    out = config.out
    out.mkdir(parents=True, exist_ok=True)  # only now: an error before the first row leaves no empty folder
    _files.write_csv(out / "compare.csv", rows)
    lines = ["| preset | condition | method | n | " + " | ".join(f"R² {g}" for g in GROUPS)
             + " | outliers | median s/structure |", "|---|---|---|---:|" + "---:|" * (len(GROUPS) + 2)]
    for row in rows:
        lines.append(f"| {row['preset']} | {row['condition']} | {row['method']} | {row['n']} | "
                     f"{r2_cells(row)} | {row['outliers']} | {row['median_s']:.3g} |")
    lines.append(f"\nmamba-ctr {__version__}; noise: {'/'.join(f'{c:g}' for c in config.counts)} counts at each "
                 f"rod's median, rod scale "
                 f"{config.rod_scale:g}; seed {TEST_SEED}")
    text = "\n".join(lines) + "\n"
    _files.write_text(out / "compare.md", text)
    plot_method_comparison(rows, config.methods, GROUPS[:5], path=out / "compare.png")
    return text
