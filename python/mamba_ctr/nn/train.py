"""Training the networks: `train(TrainConfig(...))` or `mamba-ctr train ...`.

The paper's protocol by default: Adam (lr 1e-3, betas 0.9/0.999), MAE (L1) on the standardised targets,
batch 32, 30 epochs, 90/10 train/validation split with a fixed seed, normalisation statistics of the training
split only, the best-validation checkpoint kept. With arch "paper" and target "both" the twin networks (one for
Re U, one for Im U, each with its own Adam) are trained side by side on the same batches; arch "rods" is one
network predicting both.

Data: an HDF5 file (`data`) or simulated on the fly (`stream`, a preset): then normalisation statistics come
from a pilot sample [0, pilot_samples), validation is the fixed range [pilot, pilot + val_samples), and epoch e
trains on the fresh range of samples_per_epoch structures after it (no structure is seen twice).

Files in `out`: best.{safetensors|pt,json} (lowest validation MAE), last.{…,json,optim.pt} (every epoch, for
`resume`), history.csv and loss.png (the loss curves, paper Figure 5).

A `max_minutes` budget stops training mid-epoch; the last checkpoint then records how many batches of that
epoch were done, and `resume` continues exactly there (same shuffle order), so a long run can be done in parts.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from .._checks import check_count
from ..data.torch_data import Normalisation, RodsH5Dataset, SimulatedRods, train_val_split
from . import ARCHITECTURES, build, count_parameters
from .checkpoint import load_checkpoint, save_checkpoint

__all__ = ["TrainConfig", "cpu_bf16_supported", "train"]

TARGETS = ("real", "imag", "both")
OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant", "onecycle")
PAPER_BEST_VAL_MAE = 0.124  # the authors' best validation MAE (z-score units; 0.1240 Re, 0.1231 Im)


@dataclass
class TrainConfig:
    """What `train` does (field names = `mamba-ctr train` flags).

    Attributes:
        data: an HDF5 dataset file (with /film_field); or
        stream: a preset name (or TOML family file) to simulate on the fly.
        arch: "paper" (the paper's U-Net, one network per target) or "rods" (rods as channels, both targets).
        arch_kwargs: constructor arguments of the network (e.g. {"widths": [64, 128, 256]} for rods).
        target: "real", "imag" or "both" (the paper's twins); rods needs "both".
        epochs, batch_size, lr, betas: the paper's 30, 32, 1e-3, (0.9, 0.999).
        val_fraction, split_seed: the 90/10 split of a file.
        out: output directory.
        device: "auto" (cuda if available, else cpu), "cpu", "cuda" or "cuda:N".
        amp: mixed precision on CUDA (bf16 where supported, else fp16 with a gradient scaler).
        bf16: bf16 autocast on the CPU.
        max_minutes: wall-time budget (None: none); stops mid-epoch, resumable.
        samples_per_epoch, val_samples, pilot_samples, stream_seed: the on-the-fly stream.
        seed: initialisation and shuffling seed.
        num_workers: DataLoader worker processes.
        resume: continue from out/last.*.
        progress: tqdm bar (None: only when stderr is a terminal).
        threads: torch CPU threads (0: leave torch's default).
        optimizer: "adam" (the paper's) or "adamw" (decoupled weight decay `weight_decay`).
        schedule: "constant" (the paper's) or "onecycle": linear warm-up from lr/25 to lr over the first `warmup`
            fraction, then cosine annealing to lr/1e4 at the end of training. The end is `epochs` complete epochs,
            or, with `schedule_minutes`, that much training wall time (summed over resumed parts), whichever
            comes first: a time-budgeted run anneals fully within its budget.
        val_every: also validate (and write a resumable checkpoint) every this many batches (0: per epoch only).
        compile: torch.compile the networks.
    """

    data: Path | None = None
    stream: str | None = None
    arch: str = "paper"
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    target: str = "both"
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    val_fraction: float = 0.1
    split_seed: int = 0
    out: Path = Path("mamba-ctr-train")
    device: str = "auto"
    amp: bool = True
    bf16: bool = False
    max_minutes: float | None = None
    samples_per_epoch: int = 90_000
    val_samples: int = 10_000
    pilot_samples: int = 100_000
    stream_seed: int = 0
    seed: int = 0
    num_workers: int = 0
    resume: bool = False
    progress: bool | None = None
    threads: int = 0
    optimizer: str = "adam"
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup: float = 0.05
    schedule_minutes: float | None = None
    val_every: int = 0
    compile: bool = False

    def __post_init__(self) -> None:
        if (self.data is None) == (self.stream is None):
            raise ValueError("give exactly one of data (an HDF5 file) and stream (a preset)")
        if self.data is not None:
            self.data = Path(self.data)
            if not self.data.is_file():
                raise FileNotFoundError(f"no dataset file {self.data}")
        self.out = Path(self.out)
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.arch!r} (known: {', '.join(sorted(ARCHITECTURES))})")
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if self.arch == "rods" and self.target != "both":
            raise ValueError("the rods architecture predicts Re and Im together: use target both")
        for name, minimum in (("epochs", 1), ("batch_size", 1), ("samples_per_epoch", 1), ("val_samples", 1),
                              ("pilot_samples", 1), ("seed", 0), ("split_seed", 0), ("stream_seed", 0),
                              ("num_workers", 0), ("threads", 0)):
            check_count(name, getattr(self, name), minimum)
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        self.betas = tuple(float(b) for b in self.betas)  # type: ignore[assignment]
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction!r}")
        for name in ("max_minutes", "schedule_minutes"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be > 0, got {value!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ValueError(f"weight_decay must be ≥ 0, got {self.weight_decay!r}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup must be a fraction in [0, 1), got {self.warmup!r}")
        check_count("val_every", self.val_every, 0)
        self.arch_kwargs = dict(self.arch_kwargs)

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["data"] = None if self.data is None else str(self.data)
        values["out"] = str(self.out)
        values["betas"] = list(self.betas)
        return values


# ------------------------------------------------------------------------------------------ data
@dataclass
class _Data:
    grid: Any
    preset: dict | None
    normalisation: Normalisation
    n_train: int
    train_indices: np.ndarray | None = None
    val_indices: np.ndarray | None = None
    preset_object: Any = None


def _file_data(config: TrainConfig, normalisation: Normalisation | None) -> _Data:
    from ..data.hdf5 import open_complete, read_grid

    assert config.data is not None
    with open_complete(config.data) as f:
        if "film_field" not in f:
            raise ValueError(f"{config.data} has no /film_field: the targets need it")
        n = int(f["intensity"].shape[0])
        grid = read_grid(f["grid"])
        preset = json.loads(f.attrs.get("preset", "{}")) or None
    if n < 2:
        raise ValueError(f"{config.data} holds {n} structure(s): need at least 2 for a train/validation split")
    train_idx, val_idx = train_val_split(n, config.val_fraction, config.split_seed)
    if normalisation is None:
        normalisation = Normalisation.from_file(config.data, indices=train_idx)
    return _Data(grid, preset, normalisation, train_idx.size, train_idx, val_idx)


def _pilot_normalisation(preset, seed: int, n: int) -> Normalisation:
    from ..data import stats as _stats
    from ..simulate import simulate

    total: _stats.Stats | None = None
    for lo in range(0, n, 8192):
        hi = min(n, lo + 8192)
        rods = simulate(preset.sample(hi - lo, seed, lo), preset.grid, dtype="float32")
        assert rods.film_field is not None
        piece = _stats.Stats.of_arrays(rods.intensity, rods.film_field, preset.grid.bragg, lo)
        total = piece if total is None else _stats.Stats(0, 0, total.x.merge(piece.x), total.u_re.merge(piece.u_re),
                                                         total.u_im.merge(piece.u_im))
    assert total is not None
    return Normalisation.from_stats(total)


def _stream_data(config: TrainConfig, normalisation: Normalisation | None) -> _Data:
    from ..physics.presets import resolve as resolve_preset

    assert config.stream is not None
    preset = resolve_preset(config.stream)
    if normalisation is None:
        normalisation = _pilot_normalisation(preset, config.stream_seed, config.pilot_samples)
    return _Data(preset.grid, preset.to_dict(), normalisation, config.samples_per_epoch, preset_object=preset)


@dataclass(frozen=True)
class _Ranks:
    """This process's place in a torchrun job (rank 0 of 1 without one)."""

    rank: int = 0
    world: int = 1
    initialised_here: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def _distributed(config: TrainConfig) -> tuple[_Ranks, torch.device]:
    """Join the torchrun process group (NCCL on GPUs, gloo on the CPU) when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = _device(config.device)
    if world <= 1:
        return _Ranks(), device
    import torch.distributed as dist

    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    initialise = not dist.is_initialized()
    if initialise:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return _Ranks(dist.get_rank(), dist.get_world_size(), initialise), device


class _Batches:
    """The training batches of epoch `epoch`, from (global) batch `skip` on; and the validation batches.

    With W ranks a global batch is W × batch_size structures, rank r taking every W-th of them; the epoch's
    ragged tail is dropped so that every rank does the same number of steps.
    """

    def __init__(self, config: TrainConfig, data: _Data, ranks: _Ranks) -> None:
        self.config, self.data, self.ranks = config, data, ranks
        if config.data is not None:
            self.train_set = RodsH5Dataset(config.data, data.train_indices, data.normalisation)
            val = data.val_indices[ranks.rank::ranks.world]  # type: ignore[index]
            self.val_set = RodsH5Dataset(config.data, val, data.normalisation)

    @property
    def global_batch(self) -> int:
        return self.config.batch_size * self.ranks.world

    def n_batches(self) -> int:
        if self.ranks.world == 1:
            return math.ceil(self.data.n_train / self.config.batch_size)
        n = self.data.n_train // self.global_batch
        if n < 1:
            raise ValueError(f"{self.data.n_train} training structures do not fill one global batch of "
                             f"{self.ranks.world} ranks × {self.config.batch_size}")
        return n

    def train(self, epoch: int, skip: int):
        c, (rank, world) = self.config, (self.ranks.rank, self.ranks.world)
        if c.data is not None:
            order = np.random.default_rng([c.seed, epoch]).permutation(len(self.train_set))
            order = order[skip * self.global_batch:]
            if world > 1:
                steps = len(order) // self.global_batch
                order = order[:steps * self.global_batch].reshape(steps, c.batch_size, world)[:, :, rank].ravel()
            return DataLoader(self.train_set, batch_size=c.batch_size, sampler=order.tolist(),
                              num_workers=c.num_workers, persistent_workers=False)
        base = c.pilot_samples + c.val_samples + (epoch - 1) * c.samples_per_epoch
        end = base + (c.samples_per_epoch if world == 1 else self.n_batches() * self.global_batch)
        stream = SimulatedRods(self.data.preset_object, c.stream_seed, base + skip * self.global_batch, end,
                               c.batch_size, self.data.normalisation, rank=rank, world_size=world)
        return DataLoader(stream, batch_size=None, num_workers=c.num_workers)

    def val(self):
        c = self.config
        if c.data is not None:
            return DataLoader(self.val_set, batch_size=max(c.batch_size, 64), shuffle=False,
                              num_workers=c.num_workers)
        stream = SimulatedRods(self.data.preset_object, c.stream_seed, c.pilot_samples,
                               c.pilot_samples + c.val_samples, max(c.batch_size, 64), self.data.normalisation,
                               rank=self.ranks.rank, world_size=self.ranks.world)
        return DataLoader(stream, batch_size=None, num_workers=c.num_workers)


# ------------------------------------------------------------------------------------------ models
def _heads(config: TrainConfig) -> list[str]:
    if config.arch == "rods" or config.target != "both":
        return ["both"] if config.arch == "rods" else [config.target]
    return ["real", "imag"]


def _forward(arch: str, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Network output as (B, R, NL) (paper: one target) or (B, 2R, NL) (rods: Re then Im)."""
    if arch == "paper":
        b, r, n = x.shape
        return model(x.reshape(b, 1, r * n)).reshape(b, r, n)
    return model(x)


def _target(head: str, re: torch.Tensor, im: torch.Tensor) -> torch.Tensor:
    if head == "both":
        return torch.cat([re, im], dim=1)
    return re if head == "real" else im


def _device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda asked for, but torch sees no CUDA GPU")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda[:N], got {spec!r}")
    return device


def cpu_bf16_supported() -> bool:
    """Whether this CPU runs bf16 natively (oneDNN), where bf16 autocast speeds training up."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _autocast(config: TrainConfig, device: torch.device):
    """(autocast context factory, GradScaler factory or None)."""
    import contextlib

    if device.type == "cuda" and config.amp:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        scaler = (lambda: torch.amp.GradScaler("cuda")) if dtype == torch.float16 else None
        return (lambda: torch.autocast("cuda", dtype=dtype)), scaler
    if device.type == "cpu" and config.bf16:
        return (lambda: torch.autocast("cpu", dtype=torch.bfloat16)), None
    return contextlib.nullcontext, None


def _optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)


def one_cycle_lr(peak: float, progress: float, warmup: float) -> float:
    """Learning rate of the one-cycle schedule at `progress` ∈ [0, 1] of training: linear warm-up from peak/25
    over the first `warmup` fraction, then cosine annealing to peak/1e4."""
    progress = min(max(progress, 0.0), 1.0)
    start, end = peak / 25, peak / 1e4
    if progress < warmup:
        return start + (peak - start) * progress / warmup
    t = (progress - warmup) / (1 - warmup)
    return end + 0.5 * (peak - end) * (1 + math.cos(math.pi * t))


class _Schedule:
    """The learning rate for the next step, from the steps done and the training wall time spent."""

    def __init__(self, config: TrainConfig, steps_per_epoch: int) -> None:
        self.config = config
        self.total_steps = config.epochs * steps_per_epoch
        self.total_seconds = None if config.schedule_minutes is None else config.schedule_minutes * 60

    def progress(self, steps_done: int, wall_s: float) -> float:
        by_steps = steps_done / self.total_steps
        return by_steps if self.total_seconds is None else max(by_steps, wall_s / self.total_seconds)

    def lr(self, steps_done: int, wall_s: float) -> float:
        if self.config.schedule == "constant":
            return self.config.lr
        return one_cycle_lr(self.config.lr, self.progress(steps_done, wall_s), self.config.warmup)

    def finished(self, steps_done: int, wall_s: float) -> bool:
        return self.config.schedule == "onecycle" and self.progress(steps_done, wall_s) >= 1


# ------------------------------------------------------------------------------------------ outputs
_COLUMNS = ["epoch", "batches", "complete", "samples_seen", "wall_s", "lr", "train_mae", "val_mae", "val_mae_real",
            "val_mae_imag", "best"]


def _write_curves(out: Path, history: list[dict]) -> None:
    temporary = out / ".history.csv.tmp"
    with open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)
    os.replace(temporary, out / "history.csv")
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is optional
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    samples = [row["samples_seen"] for row in history]
    ax.plot(samples, [row["train_mae"] for row in history], "o-", label="train")
    ax.plot(samples, [row["val_mae"] for row in history], "s-", label="validation")
    ax.axhline(PAPER_BEST_VAL_MAE, color="grey", ls="--", lw=1, label="paper's best validation (0.124)")
    ax.set_xlabel("training samples seen")
    ax.set_ylabel("MAE (standardised targets)")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / ".loss.png.tmp.png", dpi=120)
    plt.close(fig)
    os.replace(out / ".loss.png.tmp.png", out / "loss.png")


# ------------------------------------------------------------------------------------------ training
def _validate(arch: str, models: dict, loader, device, autocast) -> dict[str, float]:
    sums = {"real": 0.0, "imag": 0.0}
    count = 0
    for model in models.values():
        model.eval()
    with torch.no_grad():
        for x, re, im in loader:
            x, re, im = x.to(device), re.to(device), im.to(device)
            rods = re.shape[1]
            for head, model in models.items():
                with autocast():
                    pred = _forward(arch, model, x).float()
                if head == "both":
                    sums["real"] += (pred[:, :rods] - re).abs().sum().item()
                    sums["imag"] += (pred[:, rods:] - im).abs().sum().item()
                else:
                    sums[head] += (pred - _target(head, re, im)).abs().sum().item()
            count += re.numel()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        totals = torch.tensor([sums["real"], sums["imag"], float(count)], dtype=torch.float64, device=device)
        torch.distributed.all_reduce(totals)
        sums["real"], sums["imag"], count = totals[0].item(), totals[1].item(), int(totals[2].item())
    parts = {k: v / count for k, v in sums.items() if k in models or "both" in models}
    return {"val_mae_real": parts.get("real", math.nan), "val_mae_imag": parts.get("imag", math.nan),
            "val_mae": float(np.mean(list(parts.values())))}


def train(config: TrainConfig) -> list[dict]:
    """Train as `config` says; returns the history (one dict per epoch or budget-stopped part, the CSV's rows)."""
    start_time = time.perf_counter()
    ranks, device = _distributed(config)
    try:
        return _train(config, ranks, device, start_time)
    finally:
        if ranks.initialised_here:
            torch.distributed.destroy_process_group()


def _train(config: TrainConfig, ranks: _Ranks, device: torch.device, start_time: float) -> list[dict]:
    if config.threads:
        torch.set_num_threads(config.threads)
    out = config.out
    if out.exists() and not out.is_dir():
        raise ValueError(f"out must be a directory, got the file {out}")
    heads = _heads(config)
    history: list[dict] = []
    resumed = None
    if config.resume:
        if not (out / "last.json").is_file():
            raise FileNotFoundError(f"nothing to resume: no {out / 'last.json'}")
        resumed = load_checkpoint(out / "last", map_location=device, optimizer_state=True)
        stored = resumed.metadata.get("train_config", {})
        for key in ("arch", "target", "batch_size", "data", "stream"):
            asked, was = config.to_dict()[key], stored.get(key)
            if key == "data" and asked is not None and was is not None:
                asked, was = str(Path(asked).resolve()), str(Path(was).resolve())
            if was != asked:
                raise ValueError(f"cannot resume: {out} was trained with {key} = {was!r}, not {asked!r}")
        history = list(resumed.history)
        normalisation = resumed.normalisation
    elif (out / "last.json").is_file():
        raise FileExistsError(f"{out} already holds a training run (pass resume to continue it, or another out)")
    else:
        normalisation = None
    data = (_file_data if config.data is not None else _stream_data)(config, normalisation)
    if resumed is not None and not resumed.grid.same_as(data.grid):
        raise ValueError(f"cannot resume: {out} was trained on another grid")
    if ranks.world > 1:
        torch.distributed.barrier()  # every rank has checked `out` before rank 0 writes to it
    if ranks.main:
        out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(config.seed)
    rods = data.grid.shape[0]
    arch_kwargs = dict(config.arch_kwargs)
    if config.arch == "rods":
        arch_kwargs.setdefault("rods", rods)
    if resumed is not None:
        models = {h: resumed.models[h].to(device) for h in heads}
        arch_kwargs = resumed.metadata["arch_kwargs"]
    else:
        models = {h: build(config.arch, **arch_kwargs).to(device) for h in heads}
    optimizers = {h: _optimizer(config, m) for h, m in models.items()}
    # torch.compile wraps the modules for the forward passes; the plain modules are what checkpoints store
    runners: dict[str, Any] = dict(models)
    if ranks.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        runners = {h: DistributedDataParallel(m, device_ids=ids) for h, m in runners.items()}
    if config.compile:
        runners = {h: torch.compile(m) for h, m in runners.items()}
    if resumed is not None:
        for h, optimizer in optimizers.items():
            optimizer.load_state_dict(resumed.optimizer_states[h])
    autocast, make_scaler = _autocast(config, device)
    scalers = {h: make_scaler() for h in models} if make_scaler is not None else {}
    batches = _Batches(config, data, ranks)
    n_batches = batches.n_batches()

    last = history[-1] if history else None
    epoch, skip = (1, 0) if last is None else ((last["epoch"], last["batches"]) if not last["complete"]
                                               else (last["epoch"] + 1, 0))
    samples_seen = last["samples_seen"] if last else 0
    best = min((row["val_mae"] for row in history), default=math.inf)
    wall_before = last["wall_s"] if last else 0.0
    budget = None if config.max_minutes is None else config.max_minutes * 60
    show = ranks.main and (sys.stderr.isatty() if config.progress is None else config.progress)
    n_params = sum(count_parameters(m) for m in models.values())

    def save(stem: str, row_history: list[dict]) -> None:
        if not ranks.main:
            return
        save_checkpoint(out / stem, models, arch=config.arch, arch_kwargs=arch_kwargs, grid=data.grid,
                        normalisation=data.normalisation, preset=data.preset, history=row_history,
                        optimizers=optimizers if stem == "last" else None,
                        extra={"train_config": config.to_dict(), "parameters": n_params})

    schedule = _Schedule(config, n_batches)

    def wall() -> float:
        return wall_before + time.perf_counter() - start_time

    def stop_now(done: int) -> tuple[bool, float]:
        """(stop?, wall time) as rank 0 sees them: every rank must take the same decision and learning rate."""
        elapsed = wall()
        out_of_time = budget is not None and time.perf_counter() - start_time > budget
        if ranks.world > 1:
            flags = torch.tensor([float(out_of_time), elapsed], dtype=torch.float64)
            torch.distributed.broadcast(flags, 0)
            out_of_time, elapsed = bool(flags[0].item()), float(flags[1].item())
        return out_of_time or schedule.finished((epoch - 1) * n_batches + done, elapsed), elapsed

    def record(epoch: int, done: int, loss_sum: float, loss_count: int) -> dict:
        """Validate, append a history row, write the checkpoints and curves."""
        nonlocal best
        val = _validate(config.arch, runners, batches.val(), device, autocast)
        for model in models.values():
            model.train()
        row = {"epoch": epoch, "batches": done, "complete": done >= n_batches, "samples_seen": samples_seen,
               "wall_s": round(wall(), 3), "lr": next(iter(optimizers.values())).param_groups[0]["lr"],
               "train_mae": loss_sum / loss_count if loss_count else math.nan, **val, "best": False}
        if val["val_mae"] < best:
            best = val["val_mae"]
            row["best"] = True
        history.append(row)
        if row["best"]:
            save("best", history)
        save("last", history)
        if ranks.main:
            _write_curves(out, history)
        if config.progress is not False and ranks.main:
            print(f"epoch {epoch} ({done}/{n_batches} batches, {row['wall_s'] / 60:.1f} min): train MAE "
                  f"{row['train_mae']:.4f}, val MAE {val['val_mae']:.4f}{' (best)' if row['best'] else ''}",
                  file=sys.stderr)
        return row

    # from the recorded history (the same on every rank); a fresh budget allows at least one step
    synced_wall = wall_before
    stopped = schedule.finished((epoch - 1) * n_batches + skip, synced_wall)
    while epoch <= config.epochs and not stopped:
        from tqdm.auto import tqdm

        for model in models.values():
            model.train()
        loss_sum, loss_count, done = 0.0, 0, skip
        bar = tqdm(total=n_batches, initial=skip, desc=f"epoch {epoch}/{config.epochs}", disable=not show,
                   leave=False, unit="batch")
        for x, re, im in batches.train(epoch, skip):
            lr = schedule.lr((epoch - 1) * n_batches + done, synced_wall)
            x, re, im = x.to(device, non_blocking=True), re.to(device), im.to(device)
            losses = []
            for head, model in runners.items():
                optimizer = optimizers[head]
                for group in optimizer.param_groups:
                    group["lr"] = lr
                optimizer.zero_grad(set_to_none=True)
                with autocast():
                    loss = torch.nn.functional.l1_loss(_forward(config.arch, model, x).float(), _target(head, re, im))
                scaler = scalers.get(head)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    optimizer.step()
                losses.append(loss.item())
            batch_loss = float(np.mean(losses))
            if not math.isfinite(batch_loss):
                raise RuntimeError(f"the training loss is {batch_loss} at epoch {epoch}, batch {done + 1}")
            loss_sum += batch_loss * x.shape[0]
            loss_count += x.shape[0]
            samples_seen += x.shape[0] * ranks.world
            done += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / loss_count:.4f}", lr=f"{lr:.2g}")
            stopped, synced_wall = stop_now(done)
            if stopped and done < n_batches:
                break
            if config.val_every and done % config.val_every == 0 and done < n_batches:
                record(epoch, done, loss_sum, loss_count)
                loss_sum, loss_count = 0.0, 0
        bar.close()
        row = record(epoch, done, loss_sum, loss_count)
        stopped = stopped or stop_now(done)[0]
        if row["complete"]:
            epoch, skip = epoch + 1, 0
    return history
