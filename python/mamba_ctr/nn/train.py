"""Training the networks: `train(TrainConfig(...))` or `mamba-ctr train ...`.

The paper's protocol by default: Adam (lr 1e-3, betas 0.9/0.999), MAE (L1) on the standardised targets, batch
32, 30 epochs, 90/10 train/validation split, the best-validation checkpoint kept. Every architecture is ONE
module, X (B, R, NL) → (B, T, R, NL) (the paper's twins are two sub-networks inside `PaperTwinUNet`), trained by
one optimizer with one grad scaler; the one global step (optimisation steps over all resumed parts) gives the
epoch, the batch and the learning rate. The data and its batches: `mamba_ctr.nn.batches`.

Files in `out`: best.{safetensors|pt,json} (lowest validation MAE), last.{…,json,optim.pt} (every validation,
for `resume`), history.csv and loss.png (the loss curves, paper Figure 5).

A `max_minutes` budget stops training mid-epoch; the last checkpoint records how many batches of that epoch were
done, and `resume` continues exactly there (same shuffle order), so a long run can be done in parts. On 1..N GPUs
(or CPU processes) through torchrun: DistributedDataParallel, each rank taking its share of every global batch.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from .._files import write_csv
from ..errors import InputError
from . import build, count_parameters
from .batches import Batches, Ranks, training_data
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .config import TrainConfig

__all__ = ["TrainConfig", "Trainer", "cpu_bf16_supported", "one_cycle_lr", "train"]


def train(config: TrainConfig) -> list[dict]:
    """Train as `config` says; returns the history (one dict per validation, the rows of history.csv)."""
    started = time.perf_counter()
    ranks, device = _distributed(config)
    try:
        return Trainer(config, ranks, device, started).fit()
    finally:
        if ranks.initialised_here:
            torch.distributed.destroy_process_group()


class Trainer:
    """One model, one optimizer, one grad scaler and one global step `step` (epoch = step // steps per epoch)."""

    def __init__(self, config: TrainConfig, ranks: Ranks, device: torch.device, started: float) -> None:
        self.config, self.ranks, self.device, self.started = config, ranks, device, started
        if config.threads:
            torch.set_num_threads(config.threads)
        resumed = self._resumed()
        self.history = [] if resumed is None else list(resumed.history)
        self.data = training_data(config, None if resumed is None else resumed.normalisation)
        if resumed is not None and not resumed.grid.same_as(self.data.grid):
            raise InputError(f"cannot resume: {config.out} was trained on another grid")
        if ranks.world > 1:
            torch.distributed.barrier()  # every rank has checked `out` before rank 0 writes to it
        if ranks.main:
            config.out.mkdir(parents=True, exist_ok=True)
        self.batches = Batches(config, self.data, ranks)
        self.n_batches = self.batches.n_batches()
        torch.manual_seed(config.seed)
        if resumed is None:
            self.arch_kwargs = dict(config.arch_kwargs)
            if config.arch == "rods":
                self.arch_kwargs.setdefault("rods", self.data.grid.shape[0])
            elif config.target != "both":
                self.arch_kwargs["targets"] = [config.target]
            self.model = build(config.arch, **self.arch_kwargs).to(device)
        else:
            self.arch_kwargs, self.model = resumed.metadata["arch_kwargs"], resumed.model.to(device)
        self.optimizer = _optimizer(config, self.model)
        if resumed is not None and resumed.optimizer_state:
            self.optimizer.load_state_dict(resumed.optimizer_state)
        self.runner = self._runner()
        self.autocast, self.scaler = _autocast(config, device)
        self.schedule = _Schedule(config, self.n_batches)
        fresh = {"epoch": 1, "batches": 0, "samples_seen": 0, "wall_s": 0.0}
        last: dict[str, Any] = self.history[-1] if self.history else fresh
        self.step = (last["epoch"] - 1) * self.n_batches + last["batches"]
        self.samples_seen, self.wall_before = last["samples_seen"], last["wall_s"]
        self.wall_s = self.wall_before  # training wall time as rank 0 saw it at the last `should_stop`
        self.best = min((row["val_mae"] for row in self.history), default=math.inf)
        self.loss_sum, self.loss_count = 0.0, 0
        self.samples_at_start = self.samples_seen  # for the budget (should_stop)
        self.last_validation_s: float | None = None
        self.fit_started = time.perf_counter()
        # tqdm's own rule when progress is None (a bar only on a terminal); other ranks never show one
        self.hide_bar = True if not ranks.main else (None if config.progress is None else not config.progress)

    def fit(self) -> list[dict]:
        """Train until the epochs are done, the time budget is spent or the schedule has ended."""
        from tqdm.auto import tqdm

        c, n = self.config, self.n_batches
        self.fit_started = time.perf_counter()  # the training rate for the budget excludes the pilot and set-up
        stop = self.schedule.finished(self.step, self.wall_s)  # from the history: the same on every rank
        while self.step < c.epochs * n and not stop:
            epoch, skip = divmod(self.step, n)
            bar = tqdm(total=n, initial=skip, desc=f"epoch {epoch + 1}/{c.epochs}", disable=self.hide_bar,
                       leave=False, unit="batch")
            self.model.train()
            for x, re, im in self.batches.train(epoch + 1, skip):
                lr = self.train_step(x, re, im)
                bar.update(1)
                bar.set_postfix(loss=f"{self.loss_sum / self.loss_count:.4f}", lr=f"{lr:.2g}")
                stop = self.should_stop()
                if stop or self.step % n == 0:
                    break
                if c.val_every and self.step % n % c.val_every == 0:
                    self.record()
            bar.close()
            self.record()
            stop = stop or self.should_stop()
        self._warn_if_over_budget()
        return self.history

    def _warn_if_over_budget(self) -> None:
        """One line when a max_minutes budget was overrun by more than 10 %: one validation alone took longer."""
        spent = time.perf_counter() - self.started
        budget = None if self.config.max_minutes is None else 60 * self.config.max_minutes
        if budget is not None and spent > 1.1 * budget and self.ranks.main:
            print(f"mamba-ctr train: warning: the {budget:.0f} s budget was overrun ({spent:.0f} s): one validation "
                  f"takes {self.last_validation_s or 0:.0f} s; lower --val-samples to fit the budget", file=sys.stderr)

    def train_step(self, x: torch.Tensor, re: torch.Tensor, im: torch.Tensor) -> float:
        """One optimisation step on a batch (X, standardised Re U, Im U); returns its learning rate."""
        lr = self.schedule.lr(self.step, self.wall_s)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x, y = x.to(self.device, non_blocking=True), self._targets(re, im)
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            loss = F.l1_loss(self.runner(x).float(), y)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        value = loss.item()
        if not math.isfinite(value):
            raise RuntimeError(f"training diverged: the loss is {value} at step {self.step + 1} (epoch "
                               f"{self.step // self.n_batches + 1}); a lower lr (or no fp16) may help")
        self.step += 1
        self.loss_sum += value * x.shape[0]
        self.loss_count += x.shape[0]
        self.samples_seen += x.shape[0] * self.ranks.world
        return lr

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation MAE overall and per target (NaN for a target not trained), over all ranks' shares."""
        targets = self.model.targets
        sums = torch.zeros(len(targets) + 1, dtype=torch.float64, device=self.device)
        self.model.eval()
        for x, re, im in self.batches.val():
            with self.autocast():
                pred = self.runner(x.to(self.device)).float()
            y = self._targets(re, im)
            for i in range(len(targets)):
                sums[i] += (pred[:, i] - y[:, i]).abs().sum().item()
            sums[-1] += re.numel()
        self.model.train()
        if self.ranks.world > 1:
            torch.distributed.all_reduce(sums)
        parts = dict(zip(targets, (sums[:-1] / sums[-1]).tolist(), strict=True))
        return {"val_mae": float(np.mean(list(parts.values()))), "val_mae_real": parts.get("real", math.nan),
                "val_mae_imag": parts.get("imag", math.nan)}

    def should_stop(self) -> bool:
        """Whether the budget is spent or the schedule has ended, as rank 0 sees it (so that every rank takes the
        same decision and learning rate); updates the training wall time `wall_s`."""
        spent = time.perf_counter() - self.started
        # the final validation is part of the budget: stop early enough for it
        budget_left = None if self.config.max_minutes is None else self.config.max_minutes * 60 - spent
        flags = torch.tensor([float(budget_left is not None and budget_left < self._validation_seconds()),
                              self.wall_before + spent], dtype=torch.float64)
        if self.ranks.world > 1:
            torch.distributed.broadcast(flags, 0)
        self.wall_s = float(flags[1])
        return bool(flags[0]) or self.schedule.finished(self.step, self.wall_s)

    def _validation_seconds(self) -> float:
        """Seconds the next validation will take: the last one's, or before any, an estimate from the training
        rate (a validation sample costs about half a training sample: simulation and forward pass only)."""
        if self.last_validation_s is not None:
            return self.last_validation_s
        trained = self.samples_seen - self.samples_at_start
        if trained <= 0:
            return 0.0
        n_val = self.config.val_samples if self.config.stream else len(self.batches.val_set) * self.ranks.world
        return 0.5 * n_val * (time.perf_counter() - self.fit_started) / trained

    def record(self) -> None:
        """Validate; append a history row; write the checkpoints (best, when it is), history.csv and loss.png."""
        epoch = (self.step - 1) // self.n_batches + 1
        batches = self.step - (epoch - 1) * self.n_batches
        started = time.perf_counter()
        val = self.evaluate()
        self.last_validation_s = time.perf_counter() - started
        row = {"epoch": epoch, "batches": batches, "complete": batches == self.n_batches,
               "samples_seen": self.samples_seen,
               "wall_s": round(self.wall_before + time.perf_counter() - self.started, 3),
               "lr": self.optimizer.param_groups[0]["lr"],
               "train_mae": self.loss_sum / self.loss_count if self.loss_count else math.nan, **val,
               "best": val["val_mae"] < self.best}
        self.best, self.loss_sum, self.loss_count = min(self.best, val["val_mae"]), 0.0, 0
        self.history.append(row)
        if not self.ranks.main:
            return
        if row["best"]:
            self.save("best")
        self.save("last")
        write_csv(self.config.out / "history.csv", self.history)
        with contextlib.suppress(ImportError):  # matplotlib is optional (the plot extra)
            from ..plots.training import plot_training_curves

            plot_training_curves(self.history, self.config.out / "loss.png")
        if self.config.progress is not False:
            print(f"epoch {epoch} ({batches}/{self.n_batches} batches, {row['wall_s'] / 60:.1f} min): train MAE "
                  f"{row['train_mae']:.4f}, val MAE {val['val_mae']:.4f}{' (best)' if row['best'] else ''}",
                  file=sys.stderr)

    def save(self, stem: str) -> None:
        """Write the checkpoint out/STEM (with the optimizer's state for `last`)."""
        c = self.config
        save_checkpoint(c.out / stem, self.model, arch=c.arch, arch_kwargs=self.arch_kwargs, grid=self.data.grid,
                        normalisation=self.data.normalisation, preset=self.data.preset, history=self.history,
                        optimizer=self.optimizer if stem == "last" else None,
                        extra={"train_config": c.to_dict(), "parameters": count_parameters(self.model)})

    def _targets(self, re: torch.Tensor, im: torch.Tensor) -> torch.Tensor:
        """The standardised targets (B, T, R, NL) in the order of the model's outputs."""
        return torch.stack([{"real": re, "imag": im}[t] for t in self.model.targets], dim=1).to(self.device)

    def _resumed(self) -> Checkpoint | None:
        c = self.config
        if not c.resume:
            return None
        resumed = load_checkpoint(c.out / "last", map_location=self.device, optimizer_state=True)
        stored, asked = resumed.metadata.get("train_config", {}), c.to_dict()
        for key in ("arch", "target", "batch_size", "data", "stream"):
            now, was = asked[key], stored.get(key)
            if key == "data" and now is not None and was is not None:
                now, was = str(Path(now).resolve()), str(Path(was).resolve())
            if was != now:
                raise InputError(f"cannot resume: {c.out} was trained with {key} = {was!r}, not {now!r}")
        return resumed

    def _runner(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The module the steps call: the model, wrapped by DDP and torch.compile (checkpoints store the model)."""
        runner: torch.nn.Module = self.model
        if self.ranks.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            runner = DistributedDataParallel(runner, device_ids=[self.device.index] if self.device.type == "cuda"
                                             else None)
        return torch.compile(runner) if self.config.compile else runner


def _distributed(config: TrainConfig) -> tuple[Ranks, torch.device]:
    """Join the torchrun process group (NCCL on GPUs, gloo on the CPU) when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    auto = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(auto if config.device == "auto" else config.device)
    if world <= 1:
        return Ranks(), device
    import torch.distributed as dist

    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    initialise = not dist.is_initialized()
    if initialise:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Ranks(dist.get_rank(), dist.get_world_size(), initialise), device


def cpu_bf16_supported() -> bool:
    """Whether this CPU runs bf16 natively (oneDNN), where bf16 autocast speeds training up."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _autocast(config: TrainConfig, device: torch.device):
    """(autocast context factory, grad scaler): bf16 (else fp16, the only one scaled) on CUDA with amp; bf16 on
    the CPU with bf16; else full precision."""
    dtype = None
    if device.type == "cuda" and config.amp:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    elif device.type == "cpu" and config.bf16:
        dtype = torch.bfloat16
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    if dtype is None:
        return contextlib.nullcontext, scaler
    return (lambda: torch.autocast(device.type, dtype=dtype)), scaler


def _optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return kind(model.parameters(), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)


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
    """The learning rate for the next step, from the global step and the training wall time spent."""

    def __init__(self, config: TrainConfig, steps_per_epoch: int) -> None:
        self.config = config
        self.total_steps = config.epochs * steps_per_epoch
        self.total_seconds = None if config.schedule_minutes is None else config.schedule_minutes * 60

    def progress(self, step: int, wall_s: float) -> float:
        by_steps = step / self.total_steps
        return by_steps if self.total_seconds is None else max(by_steps, wall_s / self.total_seconds)

    def lr(self, step: int, wall_s: float) -> float:
        if self.config.schedule == "constant":
            return self.config.lr
        return one_cycle_lr(self.config.lr, self.progress(step, wall_s), self.config.warmup)

    def finished(self, step: int, wall_s: float) -> bool:
        return self.config.schedule == "onecycle" and self.progress(step, wall_s) >= 1
