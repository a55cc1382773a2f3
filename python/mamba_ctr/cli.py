"""The `mamba-ctr` command. Each subcommand is `main(argv) -> exit code` around a `run(config)`.

Bad input is reported in one line on stderr with exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import platform
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _backend
from ._version import __version__

EXIT_BAD_INPUT = 2


# ---------------------------------------------------------------------- info
def run_info() -> dict:
    """Version, the backend `auto` picks, each backend's availability and thread count."""
    info: dict = {"mamba-ctr": __version__, "python": platform.python_version(), "numpy": np.__version__,
                  "platform": platform.platform()}
    available = _backend.available()
    try:
        info["backend"] = _backend.resolve("auto")
    except (RuntimeError, ValueError) as error:
        info["backend"] = f"error: {error}"
    info["MAMBA_CTR_BACKEND"] = os.environ.get(_backend.ENV_VAR, "(unset)")
    for name, reason in available.items():
        info[f"{name} backend"] = "available" if reason is None else f"unavailable ({reason})"
    core = _backend.compiled_module()
    if core is not None:
        info["OpenMP"] = "yes" if core.have_openmp() else "no (single thread)"
        info["OpenMP threads"] = core.max_threads()
        try:
            info["kernel ISA"] = f"{core.isa()} (compiled variants this CPU runs: {', '.join(core.isa_variants())})"
        except ValueError as error:  # MAMBA_CTR_ISA names a variant this CPU or build lacks
            info["kernel ISA"] = f"error: {error}"
    if available["numba"] is None:
        info["numba threads"] = _backend.max_threads("numba")
    return info


def main_info(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mamba-ctr info", description="Show version, backend and threads.")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    info = run_info()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(map(len, info))
        for key, value in info.items():
            print(f"{key:<{width}}  {value}")
    return 0


# ------------------------------------------------------------------ simulate
@dataclass
class SimulateConfig:
    out: Path
    preset: str = "paper-12L"
    structure: Path | None = None
    backend: str = "auto"
    dtype: str = "float64"
    plot: bool = True
    overwrite: bool = False


def run_simulate(config: SimulateConfig) -> dict[str, Path]:
    """Rods of one structure → rods.csv, rods.h5 and PNG plots in config.out."""
    from .data.hdf5 import write_rods
    from .io.structure_file import load_structure
    from .physics import presets
    from .simulate import simulate

    if config.structure is not None:
        preset, structures = load_structure(config.structure)
    else:
        preset = presets.get(config.preset)
        structures = preset.nominal()
    out = Path(config.out)
    targets = {"csv": out / "rods.csv", "hdf5": out / "rods.h5"}
    existing = [str(p) for p in targets.values() if p.exists()]
    if existing and not config.overwrite:
        raise ValueError(f"output exists: {', '.join(existing)} (pass --overwrite to replace)")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out must be a directory, got the file {out}")
    rods = simulate(structures, preset.grid, backend=config.backend, dtype=config.dtype)
    out.mkdir(parents=True, exist_ok=True)
    write_rods(targets["hdf5"], rods, params=preset.parameters(structures), labels=preset.labels(structures),
               preset=preset.to_dict(), overwrite=True)
    _write_csv(targets["csv"], rods)
    if config.plot:
        from .plots import plot_rods

        targets["plots"] = out
        plot_rods(rods, out, title=preset.name)
    return targets


def _write_csv(path: Path, rods) -> None:
    grid = rods.grid
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["h", "k", "L", "bragg", "intensity", "U_re", "U_im", "S_re", "S_im"])
        for r in range(grid.n_rods):
            for i in range(grid.n_L):
                U = rods.film_field[0, r, i]
                S = rods.substrate_field[r, i]
                writer.writerow([grid.h[r], grid.k[r], f"{grid.L[i]:.6f}", int(grid.bragg[i]),
                                 f"{rods.intensity[0, r, i]:.10e}", f"{U.real:.10e}", f"{U.imag:.10e}",
                                 f"{S.real:.10e}", f"{S.imag:.10e}"])
    os.replace(temporary, path)


def main_simulate(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="mamba-ctr simulate",
        description="Simulate the rods of one structure (a preset's nominal one, or one from a TOML/JSON file) "
                    "and write them as CSV, HDF5 and PNG plots.")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--preset", default="paper-12L", help="preset whose nominal structure to simulate")
    source.add_argument("--structure", type=Path, help="structure file (.toml or .json)")
    parser.add_argument("--out", type=Path, default=Path("mamba-ctr-rods"), help="output directory")
    parser.add_argument("--backend", default="auto", choices=["auto", *_backend.BACKENDS])
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--no-plot", dest="plot", action="store_false", help="skip the PNG plots")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    args = parser.parse_args(argv)
    config = SimulateConfig(out=args.out, preset=args.preset, structure=args.structure, backend=args.backend,
                            dtype=args.dtype, plot=args.plot, overwrite=args.overwrite)
    written = run_simulate(config)
    for kind, path in written.items():
        print(f"{kind:>5}: {path}")
    return 0


# ------------------------------------------------------------------ datasets
@contextlib.contextmanager
def _writing_to(out, what: str = "cannot write") -> Iterator[None]:
    """An OSError other than a missing or existing file (permissions, a full disk) inside becomes a ValueError
    naming `out`, which the command reports in one line."""
    try:
        yield
    except OSError as error:
        if isinstance(error, (FileExistsError, FileNotFoundError)):
            raise
        raise ValueError(f"{what} {out} ({error})") from None


def run_generate(config) -> Path:
    """Generate the dataset of a `mamba_ctr.data.generate.GenerateConfig`; returns the output path."""
    from .data.generate import generate

    with _writing_to(config.out, "cannot write"):
        return generate(config)


def main_generate(argv: list[str]) -> int:
    from .data.generate import GenerateConfig

    parser = argparse.ArgumentParser(
        prog="mamba-ctr generate",
        description="Simulate n structures of a preset into one HDF5 file (layout version 1): crash-safe "
                    "(finished blocks survive a kill; --resume continues), deterministic, shardable.")
    parser.add_argument("--config", type=Path, help="TOML file with GenerateConfig fields (flags override it)")
    parser.add_argument("--preset", help="preset name, or a TOML file: base = \"paper-12L\" plus overrides "
                                         "(default paper-12L)")
    parser.add_argument("--n", type=int, help="structures in the whole dataset (all shards)")
    parser.add_argument("--seed", type=int, help="sampling seed (default 0)")
    parser.add_argument("--out", type=Path, help="output file FILE.h5")
    parser.add_argument("--shard", help="i/K: write shard i of K (index range [i*n//K, (i+1)*n//K))")
    parser.add_argument("--block-size", type=int, dest="block_size", help="structures per block (default 8192)")
    parser.add_argument("--dtype", choices=["float32", "float64"], help="output precision (default float32)")
    parser.add_argument("--threads", type=int, help="kernel threads (default 0 = all)")
    parser.add_argument("--backend", choices=["auto", *_backend.BACKENDS])
    parser.add_argument("--overwrite", action="store_true", default=None, help="replace an existing output")
    parser.add_argument("--resume", action="store_true", default=None, help="continue an interrupted run")
    parser.add_argument("--quiet", action="store_true", default=None, help="no progress bar")
    parser.add_argument("--join", choices=["vds", "copy"],
                        help="vds (default): FILE.h5 holds virtual datasets over the block files kept in "
                             "FILE.h5.data/ (data written once; move both together); copy: one self-contained file")
    parser.add_argument("--dask", metavar="ADDRESS",
                        help="generate the shards on a Dask cluster (tcp://host:8786, or 'local' for a LocalCluster "
                             "on this machine's cores), then merge them into --out (needs the dask extra)")
    parser.add_argument("--dask-shards", type=int, dest="dask_shards", metavar="K",
                        help="shard jobs for --dask (default: the cluster's worker threads)")
    args = parser.parse_args(argv)
    dask_address, dask_shards = args.dask, args.dask_shards
    if dask_shards is not None and dask_address is None:
        raise ValueError("--dask-shards needs --dask ADDRESS")
    flags = {k: v for k, v in vars(args).items() if k not in ("config", "dask", "dask_shards") and v is not None}
    if dask_address == "local" and "threads" not in flags:
        flags["threads"] = 1  # one single-threaded worker process per core
    if args.config is not None:
        config = GenerateConfig.from_toml(args.config, **flags)
    else:
        if "out" not in flags or "n" not in flags:
            raise ValueError("generate needs --out FILE.h5 and --n N (or --config FILE.toml)")
        config = GenerateConfig(**flags)
    if dask_address is not None:
        from .data.dask_generate import connect, generate_on_dask

        with connect(dask_address) as client:
            out = generate_on_dask(config, client, shards=dask_shards)
    else:
        out = run_generate(config)
    start, stop = config.index_range
    if not config.quiet:
        print(f"wrote structures [{start}, {stop}) of {config.n} to {out}")
    return 0


def run_merge(shards: list[Path], out: Path, overwrite: bool = False) -> Path:
    from .data.generate import merge

    try:
        return merge(shards, out, overwrite=overwrite)
    except OSError as error:
        if isinstance(error, (FileExistsError, FileNotFoundError)):
            raise
        raise ValueError(f"cannot merge into {out} ({error})") from None


def main_merge(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="mamba-ctr merge", description="Join complete shard files (generate --shard i/K) into one file.")
    parser.add_argument("shards", nargs="+", type=Path, help="shard files, in any order")
    parser.add_argument("--out", type=Path, required=True, help="merged file FILE.h5")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    args = parser.parse_args(argv)
    out = run_merge(args.shards, args.out, overwrite=args.overwrite)
    print(f"merged {len(args.shards)} shards into {out}")
    return 0


def run_stats(path: Path, start: int | None = None, stop: int | None = None, recompute: bool = False) -> dict:
    """Normalisation statistics of a dataset file (stored /stats, or computed for another index range)."""
    from .data.stats import file_stats

    try:
        return file_stats(path, start, stop, recompute=recompute).summary()
    except OSError as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise ValueError(f"cannot read {path} ({error})") from None


def main_stats(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="mamba-ctr stats",
        description="Mean/std of X = ln I (Bragg points 0; global) and of Re U, Im U (per grid point).")
    parser.add_argument("file", type=Path)
    parser.add_argument("--start", type=int, help="first structure index (default: the file's first)")
    parser.add_argument("--stop", type=int, help="one past the last structure index (default: the file's last)")
    parser.add_argument("--recompute", action="store_true", help="ignore the stored /stats")
    parser.add_argument("--json", action="store_true", help="print everything (per-point arrays too) as JSON")
    args = parser.parse_args(argv)
    summary = run_stats(args.file, args.start, args.stop, args.recompute)
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"structures  [{summary['start']}, {summary['stop']})  ({summary['structures']})")
    print(f"X = ln I    mean {summary['X_mean']:.12g}  std {summary['X_std']:.12g}")
    for part in ("U_re", "U_im"):
        mean, std = np.asarray(summary[f"{part}_mean"]), np.asarray(summary[f"{part}_std"])
        print(f"{part:<10}  mean per point in [{mean.min():.6g}, {mean.max():.6g}], "
              f"std per point in [{std.min():.6g}, {std.max():.6g}]  (shape {mean.shape}; --json for all)")
    return 0


# ------------------------------------------------------------------ training
def run_train(config) -> list[dict]:
    """Train the networks of a `mamba_ctr.nn.train.TrainConfig`; returns the history."""
    from .nn.train import train

    with _writing_to(config.out, "cannot train into"):
        return train(config)


def _rods_integers(option: str, text: str, arch: str) -> list[int]:
    """The comma-separated integers of a rods-only train option (--widths, --dilations)."""
    if arch != "rods":
        raise ValueError(f"{option} is for --arch rods")
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{option} must be comma-separated integers, got {text!r}") from None


def main_train(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="mamba-ctr train",
        description="Train the paper's twin U-Nets (--arch paper) or the rods-as-channels U-Net (--arch rods) on "
                    "an HDF5 dataset or on rods simulated on the fly; writes best/last checkpoints, history.csv "
                    "and loss.png to --out. Needs torch (pip install mamba-ctr[train]).")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="dataset file FILE.h5 (mamba-ctr generate)")
    source.add_argument("--stream", metavar="PRESET", help="simulate the training data on the fly from PRESET")
    parser.add_argument("--arch", default="paper", help="paper (default) or rods")
    parser.add_argument("--widths", help="rods: channels per level, comma-separated (default 64,128,256)")
    parser.add_argument("--dilations", help="rods: one bottleneck conv per entry with that dilation, "
                        "comma-separated (default 1,1; 1,2,4,8 triples the receptive field to about 77 L points)")
    parser.add_argument("--target", default="both", choices=["real", "imag", "both"])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32, dest="batch_size")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate (the peak with --schedule onecycle)")
    parser.add_argument("--optimizer", default="adam", choices=["adam", "adamw"], help="adam (the paper's) or adamw")
    parser.add_argument("--weight-decay", type=float, default=0.0, dest="weight_decay")
    parser.add_argument("--schedule", default="constant", choices=["constant", "onecycle"],
                        help="constant lr (the paper's) or one-cycle: warm-up, then cosine annealing to the end")
    parser.add_argument("--schedule-minutes", type=float, dest="schedule_minutes",
                        help="onecycle: anneal over this much training wall time (else over --epochs)")
    parser.add_argument("--val-every", type=int, default=0, dest="val_every",
                        help="also validate and checkpoint every N batches (0: once per epoch)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the networks")
    parser.add_argument("--val-fraction", type=float, default=0.1, dest="val_fraction")
    parser.add_argument("--split-seed", type=int, default=0, dest="split_seed")
    parser.add_argument("--samples-per-epoch", type=int, default=90_000, dest="samples_per_epoch",
                        help="--stream: structures per epoch")
    parser.add_argument("--val-samples", type=int, default=10_000, dest="val_samples",
                        help="--stream: validation structures (a fixed index range after the pilot sample)")
    parser.add_argument("--pilot-samples", type=int, default=100_000, dest="pilot_samples",
                        help="--stream: structures of the pilot sample for the normalisation statistics")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("mamba-ctr-train"), help="output directory")
    parser.add_argument("--resume", action="store_true", help="continue from --out/last.*")
    parser.add_argument("--max-minutes", type=float, dest="max_minutes", help="wall-time budget (resumable)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast on the CPU")
    parser.add_argument("--no-amp", dest="amp", action="store_false", help="no mixed precision on CUDA")
    parser.add_argument("--num-workers", type=int, default=0, dest="num_workers")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.arch not in ("paper", "rods"):
        raise ValueError(f"unknown architecture {args.arch!r} (known: paper, rods)")
    arch_kwargs = {}
    if args.widths is not None:
        arch_kwargs["widths"] = _rods_integers("--widths", args.widths, args.arch)
    if args.dilations is not None:
        arch_kwargs["bottleneck_dilations"] = _rods_integers("--dilations", args.dilations, args.arch)
        if min(arch_kwargs["bottleneck_dilations"]) < 1:
            raise ValueError(f"--dilations must be positive integers, got {args.dilations!r}")
    if args.data is not None and not args.data.is_file():
        raise FileNotFoundError(f"no dataset file {args.data}")
    from .nn.train import TrainConfig

    values = {k: v for k, v in vars(args).items() if k not in ("widths", "dilations")}
    history = run_train(TrainConfig(arch_kwargs=arch_kwargs, **values))
    if history:
        best = min(history, key=lambda row: row["val_mae"])
        print(f"{len(history)} epoch(s) recorded; best validation MAE {best['val_mae']:.4f} (epoch {best['epoch']}); "
              f"checkpoints in {args.out}")
    return 0


# ------------------------------------------------------------------ evaluate / predict
def _needs_torch(command: str) -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ImportError(f"mamba-ctr {command} needs torch: pip install \"mamba-ctr[train]\"") from None


def main_evaluate(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="mamba-ctr evaluate",
        description="Judge a model on test structures: field MAE per rod, labels extracted from the predicted "
                    "field vs the truth (R² per label and per atom type, the paper's outlier rule), figures "
                    "(paper Fig. 2a, 2b, 3a-c, 6). Writes metrics.json, r2.csv, labels.csv and PNGs to --out.")
    parser.add_argument("--model", required=True, help="shipped model name (paper-12L), training dir or checkpoint")
    parser.add_argument("--data", required=True, type=Path, help="test dataset FILE.h5 with film fields and labels")
    parser.add_argument("--n", type=int, default=500, help="structures to evaluate (default 500)")
    parser.add_argument("--start", type=int, default=0, help="first structure of the file")
    parser.add_argument("--out", type=Path, default=Path("mamba-ctr-evaluate"), help="output directory")
    parser.add_argument("--no-figures", dest="figures", action="store_false", help="skip the PNG figures")
    args = parser.parse_args(argv)
    _needs_torch("evaluate")
    from .evaluate import EvaluateConfig, evaluate

    with _writing_to(args.out):
        report = evaluate(EvaluateConfig(model=args.model, data=args.data, out=args.out, n=args.n,
                                         start=args.start, figures=args.figures))
    _print_report(report)
    print(f"files in {args.out}")
    return 0


def _print_report(report: dict) -> None:
    groups = "  ".join(f"{group} {value:.3f}" for group, value in report["r2_per_group"].items())
    print(f"{report['n']} structures, field MAE {report['field_mae']:.4f} (z-score units)")
    print(f"mean R² per atom type: {groups}")
    reference = report.get("true_field_extraction")
    if reference:
        print("  from the true field:  " + "  ".join(f"{g} {v:.4f}" for g, v in reference["r2_per_group"].items()))
    targets = report["targets"]
    print(f"outliers replaced: {report['outliers_total']}; labels meeting the targets: {targets['met']} of "
          f"{targets['of']}")


def main_predict(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="mamba-ctr predict",
        description="Predict the film field U of measured or simulated rods (HDF5 or CSV with columns h, k, L, "
                    "intensity on the model's grid), its electron density and the extracted structure. Writes "
                    "prediction.h5, structure.csv, structure.json and PNGs to --out.")
    parser.add_argument("--model", default="paper-12L", help="shipped model name, training dir or checkpoint")
    parser.add_argument("--input", required=True, type=Path, help="rods: FILE.h5 or FILE.csv")
    parser.add_argument("--out", type=Path, default=Path("mamba-ctr-predict"), help="output directory")
    parser.add_argument("--no-figures", dest="figures", action="store_false", help="skip the PNG figures")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier prediction in --out")
    args = parser.parse_args(argv)
    _needs_torch("predict")
    from .predict import PredictConfig, predict

    with _writing_to(args.out):
        result = predict(PredictConfig(model=args.model, input=args.input, out=args.out, figures=args.figures,
                                       overwrite=args.overwrite))
    labels = result["labels"]
    n = len(next(iter(labels.values())))
    print(f"{n} structure(s) predicted; files in {args.out}")
    if n == 1:
        for name, values in labels.items():
            print(f"  {name:<12} {values[0]:.4f}")
    return 0


# ------------------------------------------------------------------ demo / study / compare
def main_demo(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="mamba-ctr demo",
        description="The whole chain on the CPU in minutes: simulate a paper-12L test set, train the fast network "
                    "briefly, predict, reconstruct and evaluate it and the shipped model, refine a few structures "
                    "from the prediction, and write report.md with the figures.")
    parser.add_argument("--out", type=Path, default=Path("mamba-ctr-demo"), help="output directory")
    parser.add_argument("--n-test", type=int, default=500, dest="n_test", help="test structures (default 500)")
    parser.add_argument("--train-minutes", type=float, default=3.0, dest="train_minutes",
                        help="CPU training budget of the demo network (0: skip; default 3)")
    parser.add_argument("--n-refine", type=int, default=20, dest="n_refine",
                        help="structures refined from the shipped model's prediction (default 20)")
    parser.add_argument("--overwrite", action="store_true", help="reuse a non-empty --out")
    args = parser.parse_args(argv)
    _needs_torch("demo")
    from .demo import DemoConfig, run_demo

    with _writing_to(args.out):
        run_demo(DemoConfig(**vars(args)))
    return 0


def _pairs(text: str | None, what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        if "=" not in item:
            raise ValueError(f"{what} must be PRESET=MODEL[,PRESET=MODEL...], got {item!r}")
        key, value = item.split("=", 1)
        pairs[key.strip()] = value.strip()
    return pairs


def _preset_list(text: str) -> tuple[str, ...]:
    from .physics import presets

    names = tuple(name.strip() for name in text.split(",") if name.strip())
    return tuple(presets.get(name).name for name in names)  # aliases (12L, rough) → canonical names


def main_study(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="mamba-ctr study",
        description="thickness: train (or resume, or reuse) and evaluate one fast network per preset of the "
                    "thickness family; writes table.csv, table.md and thickness.png (paper Fig. 3d, 4). "
                    "Resumable: rerun the same command to continue.")
    parser.add_argument("study", choices=["thickness"])
    parser.add_argument("--presets", default="paper-4L,paper-12L,paper-16L,paper-24L,paper-11-13L-rough")
    parser.add_argument("--minutes", type=float, default=10.0, help="CPU training budget per model (default 10)")
    parser.add_argument("--n-test", type=int, default=500, dest="n_test")
    parser.add_argument("--models", help="reuse trained models: PRESET=DIR[,PRESET=DIR...]")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("mamba-ctr-study"))
    args = parser.parse_args(argv)
    _needs_torch("study")
    from .study import StudyConfig, run_study

    with _writing_to(args.out):
        run_study(StudyConfig(out=args.out, presets=_preset_list(args.presets), minutes=args.minutes,
                              n_test=args.n_test, models=_pairs(args.models, "--models"), threads=args.threads))
    print((args.out / "table.md").read_text())
    return 0


def main_compare(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="mamba-ctr compare",
        description="Every method on the same test structures, noise-free and noisy: mean R² per atom type and "
                    "median time per structure (compare.csv, compare.md, compare.png).")
    parser.add_argument("--presets", default="paper-4L,paper-12L,paper-16L,paper-24L,paper-11-13L-rough")
    parser.add_argument("--n", type=int, default=20, help="test structures per preset (default 20)")
    parser.add_argument("--methods", default="mamba,mamba+refine,cobra,lsq,de")
    parser.add_argument("--models", help="PRESET=MODEL[,...] for the mamba methods (model: shipped name or dir)")
    parser.add_argument("--counts", type=float, default=1000.0, help="noisy case: counts at each rod's median")
    parser.add_argument("--rod-scale", type=float, default=0.03, dest="rod_scale", help="per-rod scale spread")
    parser.add_argument("--n-global", type=int, default=3, dest="n_global", help="structures for de (slow)")
    parser.add_argument("--out", type=Path, default=Path("mamba-ctr-compare"))
    args = parser.parse_args(argv)
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    if any(m.startswith("mamba") for m in methods):
        _needs_torch("compare (methods mamba, mamba+refine)")
    from .compare import CompareConfig, run_compare

    models = {(_preset_list(k)[0]): v for k, v in _pairs(args.models, "--models").items()}
    with _writing_to(args.out):
        run_compare(CompareConfig(out=args.out, presets=_preset_list(args.presets), n=args.n, methods=methods,
                                  models=models, counts=args.counts, rod_scale=args.rod_scale,
                                  n_global=args.n_global))
    print((args.out / "compare.md").read_text())
    return 0


COMMANDS = {"info": main_info, "simulate": main_simulate}
COMMANDS.update({"generate": main_generate, "merge": main_merge, "stats": main_stats})
COMMANDS["train"] = main_train
COMMANDS.update({"evaluate": main_evaluate, "predict": main_predict, "demo": main_demo, "study": main_study,
                 "compare": main_compare})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(
        prog="mamba-ctr", description="Crystal truncation rods of epitaxial films: simulate, learn, reconstruct.")
    parser.add_argument("--version", action="version", version=f"mamba-ctr {__version__}")
    parser.add_argument("command", choices=sorted(COMMANDS), help="subcommand (mamba-ctr COMMAND --help)")
    if not argv or argv[0].startswith("-"):
        parser.parse_args(argv or ["--help"])
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        parser.parse_args([command])  # prints the choices, exits 2
    try:
        return COMMANDS[command](rest)
    except (ValueError, TypeError, FileExistsError, FileNotFoundError, RuntimeError, ImportError) as error:
        print(f"mamba-ctr {command}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"mamba-ctr {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
