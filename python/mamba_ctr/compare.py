"""`mamba-ctr compare`: every method on the same test structures, noise-free and noisy (issue 8).

Methods (labels of physics.md recovered from intensities alone):

* ``mamba``: the network's predicted film field → density → extracted labels (needs a model per preset);
* ``mamba+refine``: those labels as the start of a √I least-squares fit to the intensities (ML-initialised
  refinement; σ-weighted with a free scale per rod on noisy data);
* ``cobra``: COBRA phase retrieval from the nominal film, then the same extraction;
* ``lsq``: the classic fit of ln I from the nominal structure (as ROD/GenX users start);
* ``de``: differential evolution on ln I with a local polish (GenX's global search); slow, so it runs on the
  first `n_global` structures only.

The fits are given each structure's true number of film layers (they fit a fixed layer count); the network and
COBRA are not. Noise (`mamba_ctr.baselines.noise`): Poisson counts (`counts` at each rod's median point) and
lognormal per-rod scale errors of `rod_scale`, the same draw for every method. Outputs: compare.csv,
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

from . import presets as _presets
from ._checks import check_count
from ._tables import r2_cells, write_csv, write_text
from ._version import __version__
from .physics.presets import PerovskitePreset

__all__ = ["METHODS", "CompareConfig", "run_compare"]

METHODS = ("mamba", "mamba+refine", "cobra", "lsq", "de")
TEST_SEED = 20261125
GROUPS = ("c", "B", "O_ap", "O_eq", "p", "occupancy")


@dataclass
class CompareConfig:
    """out: output directory; presets; n: test structures per preset (seed TEST_SEED, indices [0, n));
    methods: subset of METHODS; models: preset name → model (shipped name, training dir or checkpoint) for the
    mamba methods; counts, rod_scale: the noise; n_global: structures for "de"; noise_seed."""

    out: Path = Path("mamba-ctr-compare")
    presets: tuple[str, ...] = ("paper-4L", "paper-12L", "paper-16L", "paper-24L", "paper-11-13L-rough")
    n: int = 20
    methods: tuple[str, ...] = METHODS
    models: dict[str, str] = field(default_factory=dict)
    counts: float = 1000.0
    rod_scale: float = 0.03
    n_global: int = 3
    noise_seed: int = 0
    progress: bool | None = None

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.presets, self.methods = tuple(self.presets), tuple(self.methods)
        for name in self.presets:
            _presets.get(name)
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown or not self.methods:
            raise ValueError(f"methods must be a non-empty subset of {', '.join(METHODS)}, got {self.methods}")
        check_count("n", self.n, 1)
        check_count("n_global", self.n_global, 0)
        check_count("noise_seed", self.noise_seed, 0)
        if any(m.startswith("mamba") for m in self.methods):
            missing = [p for p in self.presets if p not in self.models]
            if missing:
                raise ValueError(f"the mamba methods need a model for every preset; none given for {missing} "
                                 f"(models: PRESET=MODEL, e.g. paper-12L=paper-12L)")
        if not (self.counts > 0 and 0 <= self.rod_scale < 1):
            raise ValueError(f"need counts > 0 and 0 ≤ rod_scale < 1, got {self.counts!r}, {self.rod_scale!r}")
        if self.out.exists() and not self.out.is_dir():
            raise ValueError(f"out must be a directory, got the file {self.out}")


@dataclass
class _Case:
    preset: PerovskitePreset
    intensity: np.ndarray
    sigma: np.ndarray | None
    truth: dict[str, np.ndarray]
    n_film: np.ndarray
    model: str | None


def _mamba(case: _Case, config: CompareConfig, cache: dict) -> tuple[dict, np.ndarray]:
    from .evaluate import load_model
    from .nn.predict import predict_field
    from .reconstruct import extract_labels

    if case.model is None:
        raise ValueError(f"no model for {case.preset.name}")
    if case.model not in cache:
        cache[case.model] = load_model(case.model)
    checkpoint = cache[case.model]
    started = time.perf_counter()
    field_ = predict_field(checkpoint, np.maximum(case.intensity, 1e-30))
    labels = extract_labels(field_, case.preset.grid, case.preset)
    seconds = (time.perf_counter() - started) / len(case.n_film)
    cache[("mamba", id(case))] = labels
    cache[("mamba seconds", id(case))] = np.full(len(case.n_film), seconds)
    return labels, np.full(len(case.n_film), seconds)


def _fit_groups(case: _Case, run: Callable[[np.ndarray, int], Any], rows: np.ndarray | None = None
                ) -> tuple[dict, np.ndarray]:
    """Run a fit per group of equal film thickness; labels (n,) (NaN for rows not run) and seconds (n,)."""
    n = len(case.n_film)
    rows = np.arange(n) if rows is None else rows
    labels = {spec.name: np.full(n, np.nan) for spec in case.preset.label_specs()}
    seconds = np.full(n, np.nan)
    for n_film in np.unique(case.n_film[rows]):
        members = rows[case.n_film[rows] == n_film]
        batch = run(members, int(n_film))
        for name, values in batch.labels.items():
            labels[name][members] = values
        seconds[members] = batch.values("time")
    return labels, seconds


def _fit_kwargs(case: _Case, members: np.ndarray) -> dict[str, Any]:
    if case.sigma is None:
        return {}
    return {"sigma": case.sigma[members], "weight_by_sigma": True, "scale": "rods"}


def _refine(case: _Case, config: CompareConfig, cache: dict) -> tuple[dict, np.ndarray]:
    from .baselines import fit_intensities
    from .reconstruct import fit_start

    if ("mamba", id(case)) not in cache:
        _mamba(case, config, cache)
    started_labels = fit_start(cache[("mamba", id(case))], case.preset, true=case.truth)

    def run(members: np.ndarray, n_film: int):
        start = {name: values[members] for name, values in started_labels.items()}
        return fit_intensities(case.intensity[members], case.preset, start=start, n_film=n_film, transform="sqrt",
                               progress=config.progress, **_fit_kwargs(case, members))

    labels, seconds = _fit_groups(case, run)
    return labels, seconds + cache[("mamba seconds", id(case))]  # the network's share included


def _cobra(case: _Case, config: CompareConfig, cache: dict) -> tuple[dict, np.ndarray]:
    from .baselines import cobra_labels

    batch, labels = cobra_labels(np.maximum(case.intensity, 0.0), case.preset, progress=config.progress)
    return labels, np.asarray(batch.seconds, dtype=np.float64)


def _lsq(case: _Case, config: CompareConfig, cache: dict) -> tuple[dict, np.ndarray]:
    from .baselines import fit_intensities

    def run(members: np.ndarray, n_film: int):
        return fit_intensities(np.maximum(case.intensity[members], 1e-30), case.preset, n_film=n_film,
                               transform="log", progress=config.progress, **_fit_kwargs(case, members))

    return _fit_groups(case, run)


def _de(case: _Case, config: CompareConfig, cache: dict) -> tuple[dict, np.ndarray]:
    from .baselines import fit_intensities

    rows = np.arange(min(config.n_global, len(case.n_film)))

    def run(members: np.ndarray, n_film: int):
        return fit_intensities(np.maximum(case.intensity[members], 1e-30), case.preset, n_film=n_film,
                               transform="log", global_search=True, progress=config.progress,
                               **_fit_kwargs(case, members))

    return _fit_groups(case, run, rows)


_RUNNERS = {"mamba": _mamba, "mamba+refine": _refine, "cobra": _cobra, "lsq": _lsq, "de": _de}


def _cases(config: CompareConfig, name: str) -> dict[str, _Case]:
    from .baselines import NoiseModel, add_noise
    from .simulate import simulate

    preset = _presets.get(name)
    structures = preset.sample(config.n, TEST_SEED, 0)
    intensity = simulate(structures, preset.grid, dtype="float64").intensity
    truth = preset.labels(structures)
    n_film = preset.parameters(structures)["n_film"].astype(int)
    noisy = add_noise(intensity, preset.grid, NoiseModel(counts=config.counts, rod_scale=config.rod_scale,
                                                         seed=config.noise_seed))
    model = config.models.get(name)
    return {"noise-free": _Case(preset, intensity, None, truth, n_film, model),
            "noisy": _Case(preset, noisy.intensity, noisy.sigma, truth, n_film, model)}


def run_compare(config: CompareConfig) -> list[dict[str, Any]]:
    """Run every method on every preset and condition; write and return the table rows."""
    from .reconstruct import r2_scores

    rows: list[dict[str, Any]] = []
    cache: dict = {}
    config.out.mkdir(parents=True, exist_ok=True)
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
                _write(config, rows)
    return rows


def _write(config: CompareConfig, rows: list[dict[str, Any]]) -> None:
    out = config.out
    write_csv(out / "compare.csv", rows)
    lines = ["| preset | condition | method | n | " + " | ".join(f"R² {g}" for g in GROUPS)
             + " | outliers | median s/structure |", "|---|---|---|---:|" + "---:|" * (len(GROUPS) + 2)]
    for row in rows:
        lines.append(f"| {row['preset']} | {row['condition']} | {row['method']} | {row['n']} | "
                     f"{r2_cells(row, GROUPS)} | "
                     f"{row['outliers']} | {row['median_s']:.3g} |")
    lines.append(f"\nmamba-ctr {__version__}; noise: {config.counts:g} counts at each rod's median, rod scale "
                 f"{config.rod_scale:g}; seed {TEST_SEED}")
    write_text(out / "compare.md", "\n".join(lines) + "\n")
    _figure(config, rows)


def _figure(config: CompareConfig, rows: list[dict[str, Any]]) -> None:
    from .plots.rods import _pyplot

    plt = _pyplot()
    conditions = ["noise-free", "noisy"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True, layout="constrained")
    presets = list(dict.fromkeys(row["preset"] for row in rows))
    for ax, condition in zip(axes, conditions, strict=True):
        for method in config.methods:
            mean_r2 = []
            for name in presets:
                match = [r for r in rows if r["preset"] == name and r["method"] == method
                         and r["condition"] == condition]
                values = [match[0][f"R2_{g}"] for g in GROUPS[:5]] if match else [math.nan]
                mean_r2.append(np.nanmean(values) if np.isfinite(values).any() else math.nan)
            ax.plot(range(len(presets)), mean_r2, "o-", label=method)
        ax.set_xticks(range(len(presets)), [p.replace("paper-", "") for p in presets])
        ax.set_title(condition)
        ax.set_ylim(-0.2, 1.02)
        ax.set_xlabel("preset")
    axes[0].set_ylabel("mean R² over atom types")
    axes[1].legend(fontsize=8)
    fig.savefig(config.out / "compare.png", dpi=110)
    plt.close(fig)
