"""`TrainConfig`: what `mamba_ctr.nn.train.train` does. It owns every default and every check (InputError)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from .inputs import INPUTS, SCALE_FREE

__all__ = ["TrainConfig"]

TARGETS = ("real", "imag", "both")
OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant", "onecycle")


def _help(text: str, **more: Any) -> dict[str, Any]:
    return {"help": text, **more}


def _numbers(name: str, value: Any, kind: type = int) -> tuple:
    """A tuple of numbers from a sequence or a comma-separated string ("1,2,4,8")."""
    try:
        return tuple(kind(v) for v in (value.split(",") if isinstance(value, str) else value))
    except (TypeError, ValueError):
        raise InputError(f"{name} must be comma-separated {kind.__name__}s, got {value!r}") from None


@dataclass
class TrainConfig:
    """What `train` does; the field names are the `mamba-ctr train` options. The paper's protocol by default."""

    data: Path | None = field(default=None, metadata=_help("an HDF5 dataset with /film_field (or give stream)"))
    stream: str | None = field(default=None, metadata=_help("simulate the data on the fly from this preset (name or "
                                                               "TOML file)"))
    arch: str = field(default="paper", metadata=_help("paper (the paper's twin U-Nets) or rods (rods as channels)",
                                                      choices=("paper", "rods")))
    widths: tuple[int, ...] | None = field(default=None, metadata=_help("rods: channels per level, default 64,128,256"))
    dilations: tuple[int, ...] | None = field(default=None, metadata=_help(
        "rods: one bottleneck conv per entry, with that dilation (default 1,1; 1,2,4,8 triples the reach)"))
    arch_kwargs: dict[str, Any] = field(default_factory=dict, metadata=_help("more arguments of the network"))
    input: str = field(default="standardised", metadata=_help(
        "network input: standardised ln I (the paper's), scale-free (ln I minus its per-rod mean over the "
        "measured points, plus a mask channel; rods only) or scale-free-global (minus one mean over all rods): "
        "nn.inputs", choices=INPUTS))
    augment: bool = field(default=False, metadata=_help(
        "stream: draw measurement nuisances per structure (rod scale, counts 1e2..1e6, background, L offset, "
        "coverage masks; data.augment); needs a scale-free input"))
    augmentation: dict[str, str] = field(default_factory=dict, metadata=_help(
        "with augment: the nuisances' distributions where not the defaults of data.augment.Augmentation, e.g. "
        "rod_scale=0,full_coverage=1,clean_fraction=0.5,counts=1e3:1e6"))
    target: str = field(default="both", metadata=_help("paper: train the twin for real, imag or both",
                                                       choices=TARGETS))
    epochs: int = field(default=30, metadata=_help("training epochs"))
    batch_size: int = field(default=32, metadata=_help("structures per batch and rank"))
    lr: float = field(default=1e-3, metadata=_help("learning rate (the peak with schedule onecycle)"))
    betas: tuple[float, float] = field(default=(0.9, 0.999), metadata=_help("Adam's betas"))
    optimizer: str = field(default="adam", metadata=_help("adam (the paper's) or adamw", choices=OPTIMIZERS))
    weight_decay: float = field(default=0.0, metadata=_help("weight decay (decoupled with adamw)"))
    schedule: str = field(default="constant", metadata=_help(
        "constant lr or onecycle: warm-up from lr/25, cosine annealing to lr/1e4 at the end of the epochs or of "
        "schedule_minutes, whichever comes first", choices=SCHEDULES))
    warmup: float = field(default=0.05, metadata=_help("onecycle: warm-up fraction of training"))
    schedule_minutes: float | None = field(default=None, metadata=_help("onecycle: anneal over this much training "
                                                                        "wall time (over resumed parts)"))
    val_every: int = field(default=0, metadata=_help("also validate and checkpoint every N batches (0: per epoch)"))
    val_fraction: float = field(default=0.1, metadata=_help("data: validation fraction of the file"))
    split_seed: int = field(default=0, metadata=_help("data: seed of the train/validation split"))
    samples_per_epoch: int = field(default=90_000, metadata=_help("stream: structures per epoch"))
    val_samples: int = field(default=10_000, metadata=_help("stream: validation structures (after the pilot)"))
    pilot_samples: int = field(default=100_000, metadata=_help("stream: structures for the normalisation"))
    stream_seed: int = field(default=0, metadata=_help("stream: seed of the simulated structures"))
    seed: int = field(default=0, metadata=_help("initialisation and shuffling seed"))
    out: Path = field(default=Path("mamba-ctr-train"), metadata=_help("output directory"))
    resume: bool = field(default=False, metadata=_help("continue the run in out (out/last.*)"))
    max_minutes: float | None = field(default=None, metadata=_help(
        "wall-time budget (stops mid-epoch, resumable; a stream's pilot stops early after a quarter of it)"))
    device: str = field(default="auto", metadata=_help("auto (cuda if available), cpu, cuda or cuda:N"))
    amp: bool = field(default=True, metadata=_help("CUDA: mixed precision (bf16, else fp16 with a grad scaler)"))
    bf16: bool = field(default=False, metadata=_help("CPU: bf16 autocast"))
    compile: bool = field(default=False, metadata=_help("torch.compile the network"))
    num_workers: int = field(default=0, metadata=_help("DataLoader worker processes"))
    threads: int = field(default=0, metadata=_help("torch CPU threads (0: torch's default)"))
    progress: bool | None = field(default=None, metadata=_help("progress bar (default: if stderr is a terminal)"))

    def __post_init__(self) -> None:
        if (self.data is None) == (self.stream is None):
            raise InputError("give exactly one of data (an HDF5 file) and stream (a preset)")
        if self.data is not None:
            self.data = Path(self.data)
            if not self.data.is_file():
                raise InputError(f"no dataset file {self.data}")
        self._check_choices()
        self._check_numbers()
        self._check_network()
        self._check_device()
        self.out = Path(self.out)
        if self.out.exists() and not self.out.is_dir():
            raise InputError(f"out must be a directory, got the file {self.out}")
        if self.resume and not (self.out / "last.json").is_file():
            raise InputError(f"nothing to resume: no {self.out / 'last.json'}")
        if not self.resume and (self.out / "last.json").is_file():
            raise InputError(f"{self.out} already holds a training run (continue it with --resume, resume=True in "
                             "Python, or give another --out)")

    def _check_choices(self) -> None:
        for name, known in (("target", TARGETS), ("optimizer", OPTIMIZERS), ("schedule", SCHEDULES)):
            if getattr(self, name) not in known:
                raise InputError(f"{name} must be one of {', '.join(known)}, got {getattr(self, name)!r}")
        if self.input not in INPUTS:
            raise InputError(f"input must be one of {', '.join(INPUTS)}, got {self.input!r}")
        if self.input in SCALE_FREE and (self.arch != "rods" or self.stream is None):
            raise InputError(f"input {self.input} (value and mask channels per rod) needs arch rods and stream")
        if self.augment and (self.input not in SCALE_FREE or self.stream is None):
            raise InputError("augment needs a scale-free input (masked points) and stream (nuisances drawn on the "
                             "fly)")
        if self.augmentation and not self.augment:
            raise InputError("augmentation options are given but augment is off: add --augment")
        from ..data.augment import Augmentation

        Augmentation.from_options(self.augmentation)  # its checks: one line for an unknown key or a bad value
        if self.arch == "rods" and self.target != "both":
            raise InputError("the rods architecture predicts Re and Im together: use target both")

    def _check_numbers(self) -> None:
        for name, minimum in (("epochs", 1), ("batch_size", 1), ("samples_per_epoch", 1), ("val_samples", 1),
                              ("pilot_samples", 1), ("seed", 0), ("split_seed", 0), ("stream_seed", 0),
                              ("num_workers", 0), ("threads", 0), ("val_every", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise InputError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
        for name, low, high, closed in (("lr", 0, math.inf, False), ("val_fraction", 0, 1, False),
                                        ("max_minutes", 0, math.inf, False), ("schedule_minutes", 0, math.inf, False),
                                        ("weight_decay", 0, math.inf, True), ("warmup", 0, 1, True)):
            value = getattr(self, name)
            if value is None and name.endswith("minutes"):  # no budget / no wall-time schedule
                continue
            if not (low <= value < high and (closed or value > low)):
                raise InputError(f"{name} must be in {'[' if closed else '('}{low}, {high}), got {value!r}")
        self.betas = _numbers("betas", self.betas, float)  # type: ignore[assignment]
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise InputError(f"betas must be two numbers in [0, 1), got {self.betas!r}")

    def _check_network(self) -> None:
        from . import ARCHITECTURES, build

        if self.arch not in ARCHITECTURES:
            raise InputError(f"unknown architecture {self.arch!r} (known: {', '.join(sorted(ARCHITECTURES))})")
        self.arch_kwargs = dict(self.arch_kwargs)
        for name, key in (("widths", "widths"), ("dilations", "bottleneck_dilations")):
            value = getattr(self, name)
            if value is None:
                continue
            if self.arch != "rods":
                raise InputError(f"{name} is for arch rods, not {self.arch!r}")
            numbers = _numbers(name, value)
            if not numbers or min(numbers) < 1:
                raise InputError(f"{name} must be positive integers, got {value!r}")
            setattr(self, name, numbers)
            self.arch_kwargs[key] = list(numbers)
        if self.input in SCALE_FREE:
            self.arch_kwargs["inputs_per_rod"] = 2
        try:  # the network's own checks of its arguments
            build(self.arch, **self.arch_kwargs)
        except (TypeError, ValueError) as error:
            raise InputError(f"arch {self.arch} with {self.arch_kwargs}: {error}") from None

    def _check_device(self) -> None:
        import torch

        try:
            kind = "auto" if self.device == "auto" else torch.device(self.device).type
        except (RuntimeError, TypeError):
            kind = None
        if kind not in ("auto", "cpu", "cuda"):
            raise InputError(f"device must be auto, cpu or cuda[:N], got {self.device!r}")
        if kind == "cuda" and not torch.cuda.is_available():
            raise InputError("device cuda asked for, but torch sees no CUDA GPU")

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON values (stored in checkpoints)."""
        values = dataclasses.asdict(self)
        values.update(data=None if self.data is None else str(self.data), out=str(self.out), betas=list(self.betas))
        for name in ("widths", "dilations"):
            values[name] = None if values[name] is None else list(values[name])
        return values
