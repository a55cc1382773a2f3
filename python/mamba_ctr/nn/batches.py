"""The data of a training run: a file's train/validation split or the on-the-fly stream, its normalisation, and
the batches of each epoch for each rank of a torchrun job.

Data: an HDF5 file (`data`: a 90/10 split with a fixed seed, normalisation statistics of the training split) or
simulated on the fly (`stream`, a preset): then normalisation statistics come from a pilot sample
[0, pilot_samples), validation is the fixed range [pilot, pilot + val_samples), and epoch e trains on the fresh
range of samples_per_epoch structures after it (no structure is seen twice).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch.utils.data import DataLoader

from ..data.augment import Augmentation
from ..data.torch_data import Normalisation, RodsH5Dataset, SimulatedRods, train_val_split
from ..errors import InputError
from .config import TrainConfig
from .inputs import InputTransform, TrainingInput

__all__ = ["Batches", "Ranks", "TrainingData", "training_data"]


@dataclass(frozen=True)
class Ranks:
    """This process's place in a torchrun job (rank 0 of 1 without one)."""

    rank: int = 0
    world: int = 1
    initialised_here: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


@dataclass
class TrainingData:
    """The grid, preset (to_dict) and normalisation of a run; a file's split or the stream's preset."""

    grid: Any
    preset: dict | None
    normalisation: Normalisation
    n_train: int
    train_indices: np.ndarray | None = None
    val_indices: np.ndarray | None = None
    preset_object: Any = None


def training_data(config: TrainConfig, normalisation: Normalisation | None = None) -> TrainingData:
    """The run's data; `normalisation` (a resumed run's) instead of computing it."""
    return (_file_data if config.data is not None else _stream_data)(config, normalisation)


def _file_data(config: TrainConfig, normalisation: Normalisation | None) -> TrainingData:
    from ..data.hdf5 import open_complete, read_grid

    assert config.data is not None
    with open_complete(config.data) as f:
        if "film_field" not in f:
            raise InputError(f"{config.data} has no /film_field: the targets need it")
        n = int(f["intensity"].shape[0])
        grid = read_grid(f["grid"])
        preset = json.loads(f.attrs.get("preset", "{}")) or None
    if n < 2:
        raise InputError(f"{config.data} holds {n} structure(s): need at least 2 for a train/validation split")
    train_idx, val_idx = train_val_split(n, config.val_fraction, config.split_seed)
    if normalisation is None:
        normalisation = Normalisation.from_file(config.data, indices=train_idx)
    return TrainingData(grid, preset, normalisation, train_idx.size, train_idx, val_idx)


PILOT_SHARE = 0.25  # of a max_minutes budget that the pilot may take: the training itself needs the rest


def _pilot_normalisation(preset, seed: int, n: int, budget_s: float | None = None) -> Normalisation:
    """Statistics of structures [0, n) of the stream; with a wall-time budget, chunks of 1024 and a stop after
    the chunk that passes PILOT_SHARE of it (≥ 1024 structures), so that a short run keeps its budget."""
    import time

    from ..data.stats import Stats
    from ..simulate import simulate

    chunk = 8192 if budget_s is None else 1024
    deadline = None if budget_s is None else time.perf_counter() + PILOT_SHARE * budget_s
    total = Stats.empty(preset.grid.shape)
    for lo in range(0, n, chunk):
        rods = simulate(preset.sample(min(n, lo + chunk) - lo, seed, lo), preset.grid, dtype="float32")
        assert rods.film_field is not None
        total = total.merge(Stats.of_arrays(rods.intensity, rods.film_field, preset.grid.bragg, lo))
        if deadline is not None and time.perf_counter() > deadline:
            break
    return Normalisation.from_stats(total)


def _stream_data(config: TrainConfig, normalisation: Normalisation | None) -> TrainingData:
    from ..families import resolve as resolve_preset

    assert config.stream is not None
    preset = resolve_preset(config.stream)
    if normalisation is None:
        budget = None if config.max_minutes is None else 60 * config.max_minutes
        normalisation = _pilot_normalisation(preset, config.stream_seed, config.pilot_samples, budget)
    return TrainingData(preset.grid, preset.to_dict(), normalisation, config.samples_per_epoch,
                        preset_object=preset)


class Batches:
    """The training batches of epoch `epoch`, from (global) batch `skip` on; and the validation batches.

    With W ranks a global batch is W × batch_size structures, rank r taking every W-th of them; the epoch's
    ragged tail is dropped so that every rank does the same number of steps.
    """

    def __init__(self, config: TrainConfig, data: TrainingData, ranks: Ranks) -> None:
        self.config, self.data, self.ranks = config, data, ranks
        if config.data is not None:
            self.train_set = RodsH5Dataset(config.data, data.train_indices, data.normalisation)
            val = data.val_indices[ranks.rank::ranks.world]  # type: ignore[index]
            self.val_set = RodsH5Dataset(config.data, val, data.normalisation)

    def _make_input(self) -> TrainingInput | None:
        """The stream's input transform and nuisances (None: the standardised input of clean rods)."""
        c, grid = self.config, self.data.grid
        if c.input == "standardised" and not c.augment:
            return None
        augmentation = Augmentation.from_options(c.augmentation) if c.augment else None
        return TrainingInput(InputTransform.of(c.input, self.data.normalisation, grid.bragg), augmentation,
                             c.stream_seed, np.asarray(grid.L))

    @property
    def global_batch(self) -> int:
        return self.config.batch_size * self.ranks.world

    def n_batches(self) -> int:
        """Steps per epoch."""
        if self.ranks.world == 1:
            return math.ceil(self.data.n_train / self.config.batch_size)
        n = self.data.n_train // self.global_batch
        if n < 1:
            raise InputError(f"{self.data.n_train} training structures do not fill one global batch of "
                             f"{self.ranks.world} ranks × {self.config.batch_size}")
        return n

    def train(self, epoch: int, skip: int) -> DataLoader:
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
                               c.batch_size, self.data.normalisation, rank=rank, world_size=world,
                               make_input=self._make_input())
        return DataLoader(stream, batch_size=None, num_workers=c.num_workers)

    def val(self) -> DataLoader:
        c = self.config
        if c.data is not None:
            return DataLoader(self.val_set, batch_size=max(c.batch_size, 64), shuffle=False,
                              num_workers=c.num_workers)
        stream = SimulatedRods(self.data.preset_object, c.stream_seed, c.pilot_samples,
                               c.pilot_samples + c.val_samples, max(c.batch_size, 64), self.data.normalisation,
                               rank=self.ranks.rank, world_size=self.ranks.world, make_input=self._make_input())
        return DataLoader(stream, batch_size=None, num_workers=c.num_workers)
