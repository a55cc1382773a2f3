"""PyTorch data: a map-style Dataset over HDF5 files and an IterableDataset simulated on the fly.

Needs torch (the `train` extra: ``pip install mamba-ctr[train]``); nothing else in mamba_ctr imports this
module, so the package works without torch.

    >>> from torch.utils.data import DataLoader
    >>> from mamba_ctr.data.torch_data import Normalisation, RodsH5Dataset, SimulatedRods, train_val_split
    >>> train, val = train_val_split(n, val_fraction=0.1, seed=0)            # the paper's 90/10
    >>> norm = Normalisation.from_file("train.h5", indices=train)             # statistics of the training split
    >>> loader = DataLoader(RodsH5Dataset("train.h5", train, norm), batch_size=32, shuffle=True, num_workers=4)
    >>> stream = SimulatedRods("paper-12L", seed=1, start=0, stop=90_000, batch_size=32, normalisation=norm)
    >>> loader = DataLoader(stream, batch_size=None, num_workers=2)           # batches (X, re, im): (32, R, NL)

Every item is (X, re, im), float32 tensors of shape (R, NL) (batches: (B, R, NL)):
X = (ln I − mean_X) / std_X with the Bragg points set to 0 before standardising (one global mean/std over
every point, the zeroed Bragg points included, as in the paper §4.1), re = (Re U − mean) / std and
im = (Im U − mean) / std per grid point.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from .._checks import check_count
from ..physics import presets as _presets
from ..simulate import network_input, simulate
from . import stats as _stats
from .hdf5 import open_complete

__all__ = ["Normalisation", "RodsH5Dataset", "SimulatedRods", "train_val_split"]


# ---------------------------------------------------------------------------------------------- normalisation
@dataclass
class Normalisation:
    """Standardisation of the network input X (global mean/std) and of Re U, Im U (per grid point, (R, NL)).

    A grid point whose std is 0 is divided by 1 instead (never NaN).
    """

    X_mean: float
    X_std: float
    U_re_mean: np.ndarray
    U_re_std: np.ndarray
    U_im_mean: np.ndarray
    U_im_std: np.ndarray

    def __post_init__(self) -> None:
        self.X_mean, self.X_std = float(self.X_mean), float(self.X_std)
        for name in ("U_re_mean", "U_re_std", "U_im_mean", "U_im_std"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64))
        shapes = {self.U_re_mean.shape, self.U_re_std.shape, self.U_im_mean.shape, self.U_im_std.shape}
        if len(shapes) != 1 or self.U_re_mean.ndim != 2:
            raise ValueError(f"U means and stds must all have one shape (R, NL), got {sorted(shapes)}")
        if not (np.isfinite(self.X_mean) and np.isfinite(self.X_std) and self.X_std > 0):
            raise ValueError(f"X_std must be finite and > 0 (X_mean finite), got {self.X_mean}, {self.X_std}")

    @property
    def shape(self) -> tuple[int, int]:
        return self.U_re_mean.shape  # type: ignore[return-value]

    @classmethod
    def from_stats(cls, stats: _stats.Stats) -> Normalisation:
        return cls(float(stats.x.mean), float(stats.x.std), stats.u_re.mean, stats.u_re.std, stats.u_im.mean,
                   stats.u_im.std)

    @classmethod
    def from_file(cls, path: str | os.PathLike, start: int | None = None, stop: int | None = None,
                  indices=None) -> Normalisation:
        """Statistics of a complete dataset file: of the global index range [start, stop) (the stored /stats
        when they cover it, else computed), or of the rows `indices` (0 .. n−1, e.g. a training split)."""
        if indices is None:
            return cls.from_stats(_stats.file_stats(path, start, stop))
        if start is not None or stop is not None:
            raise ValueError("give either start/stop or indices, not both")
        with open_complete(path) as f:
            rows = np.unique(_check_indices(indices, f["intensity"].shape[0], str(path)))
            if rows.size == 0:
                raise ValueError("indices is empty: no statistics to compute")
            return cls.from_stats(_stats.of_rows(f, rows))

    # -------------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-able (floats and nested lists), e.g. for checkpoint metadata."""
        return {"X_mean": self.X_mean, "X_std": self.X_std, "U_re_mean": self.U_re_mean.tolist(),
                "U_re_std": self.U_re_std.tolist(), "U_im_mean": self.U_im_mean.tolist(),
                "U_im_std": self.U_im_std.tolist()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Normalisation:
        missing = sorted({"X_mean", "X_std", "U_re_mean", "U_re_std", "U_im_mean", "U_im_std"} - set(values))
        if missing:
            raise ValueError(f"normalisation dict lacks {missing}")
        return cls(values["X_mean"], values["X_std"], values["U_re_mean"], values["U_re_std"], values["U_im_mean"],
                   values["U_im_std"])

    # -------------------------------------------------------------------- applying
    def _check_shape(self, array: np.ndarray) -> None:
        if tuple(array.shape[-2:]) != self.shape:
            raise ValueError(f"expected (..., {self.shape[0]}, {self.shape[1]}) arrays (the grid of the "
                             f"statistics), got shape {tuple(array.shape)}")

    def apply_x(self, X: np.ndarray, dtype=np.float32) -> np.ndarray:
        """(X − X_mean) / X_std of network inputs X = ln I (Bragg points 0), shape (..., R, NL)."""
        X = np.asarray(X)
        self._check_shape(X)
        return ((X.astype(np.float64) - self.X_mean) / self.X_std).astype(dtype)

    def apply_targets(self, U: np.ndarray, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
        """(re, im) standardised per grid point of the film field U (..., R, NL) (complex)."""
        U = np.asarray(U)
        self._check_shape(U)
        re = (U.real.astype(np.float64) - self.U_re_mean) / _safe(self.U_re_std)
        im = (U.imag.astype(np.float64) - self.U_im_mean) / _safe(self.U_im_std)
        return re.astype(dtype), im.astype(dtype)

    def invert_targets(self, re, im):
        """The film field U = (re·std + mean) + i (im·std + mean) of standardised targets (numpy arrays →
        complex128 array; torch tensors → complex tensor on their device, float64 → complex128 else complex64)."""
        if isinstance(re, torch.Tensor) or isinstance(im, torch.Tensor):
            re, im = torch.as_tensor(re), torch.as_tensor(im)
            self._check_shape(re)
            self._check_shape(im)
            real = re.dtype if re.dtype == torch.float64 else torch.float32

            def tensor(a: np.ndarray) -> torch.Tensor:
                return torch.as_tensor(a, dtype=real, device=re.device)

            return torch.complex(re.to(real) * tensor(_safe(self.U_re_std)) + tensor(self.U_re_mean),
                                 im.to(real) * tensor(_safe(self.U_im_std)) + tensor(self.U_im_mean))
        re, im = np.asarray(re, dtype=np.float64), np.asarray(im, dtype=np.float64)
        self._check_shape(re)
        self._check_shape(im)
        return (re * _safe(self.U_re_std) + self.U_re_mean) + 1j * (im * _safe(self.U_im_std) + self.U_im_mean)

    def standardise(self, intensity: np.ndarray, film_field: np.ndarray, bragg: np.ndarray,
                    dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(X, re, im) tensors of raw intensity and film field (..., R, NL)."""
        X = self.apply_x(network_input(np.asarray(intensity), np.asarray(bragg, dtype=bool)))
        re, im = self.apply_targets(film_field)
        return tuple(torch.from_numpy(a).to(dtype) for a in (X, re, im))  # type: ignore[return-value]


def _safe(std: np.ndarray) -> np.ndarray:
    return np.where(std > 0, std, 1.0)


def _check_indices(indices, n: int, what: str) -> np.ndarray:
    """indices as an int64 array, IndexError if any is outside 0 .. n−1."""
    if isinstance(indices, range):
        array = np.arange(indices.start, indices.stop, indices.step, dtype=np.int64)
    else:
        array = np.asarray(indices)
        if array.size == 0:
            array = array.astype(np.int64)
        if array.ndim != 1 or not (np.issubdtype(array.dtype, np.integer) or array.size == 0):
            raise ValueError(f"indices must be a 1-D sequence of integers, got {array.dtype} shape {array.shape}")
        array = array.astype(np.int64)
    if array.size and (array.min() < 0 or array.max() >= n):
        bad = array[(array < 0) | (array >= n)][0]
        raise IndexError(f"index {bad} is out of range for {what} with {n} structures (valid: 0 .. {n - 1})")
    return array


def train_val_split(n: int, val_fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) row indices of a dataset of n structures: a fixed-seed random permutation split
    (paper: 90/10), each part sorted (shuffle with the DataLoader). round(n·val_fraction) go to validation
    (at least one when val_fraction > 0, at most n − 1)."""
    check_count("n", n, 1)
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    n = int(n)
    n_val = round(n * val_fraction)
    if val_fraction > 0:
        n_val = min(max(n_val, 1), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


# ---------------------------------------------------------------------------------------------- HDF5
class RodsH5Dataset(Dataset):
    """Map-style Dataset over a complete mamba-ctr HDF5 file (format version 1): item i is (X, re, im) of
    row indices[i] of the file, standardised tensors (R, NL).

    The HDF5 file is opened lazily, once per process, at the first item read there: the Dataset pickles
    without an open handle, so it is safe with DataLoader(num_workers > 0) under fork or spawn and with
    DistributedSampler.

    Args:
        path: the file (complete, with /film_field).
        indices: rows to use (0 .. n−1, e.g. a split from `train_val_split`), None for all.
        normalisation: a Normalisation; None for the file's own /stats (all its structures).
        dtype: tensor dtype.
    """

    def __init__(self, path: str | os.PathLike, indices=None, normalisation: Normalisation | None = None,
                 dtype: torch.dtype = torch.float32) -> None:
        self.path = os.fspath(path)
        with open_complete(self.path) as f:
            if "film_field" not in f:
                raise ValueError(f"{self.path} has no /film_field: the targets need it")
            self.n_file, *shape = f["intensity"].shape
            self.grid_shape = tuple(shape)
            self.bragg = np.asarray(f["grid/bragg"][()], dtype=bool)
        self.indices = np.arange(self.n_file) if indices is None else _check_indices(indices, self.n_file, self.path)
        self.normalisation = Normalisation.from_file(self.path) if normalisation is None else normalisation
        if self.normalisation.shape != self.grid_shape:
            raise ValueError(f"normalisation is for grids {self.normalisation.shape}, {self.path} has "
                             f"{self.grid_shape}")
        self.dtype = dtype
        self._file: h5py.File | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return int(self.indices.size)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_file"] = None
        state["_pid"] = None
        return state

    def _open(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            # a handle inherited through fork is left alone (not closed: it belongs to the parent)
            self._file = open_complete(self.path)
            self._pid = os.getpid()
        return self._file

    def close(self) -> None:
        """Close this process's handle (it reopens on the next read)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        i = int(i)
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"item {i} is out of range for a dataset of {n} structures")
        row = int(self.indices[i])
        f = self._open()
        return self.normalisation.standardise(f["intensity"][row], f["film_field"][row], self.bragg, self.dtype)


# ---------------------------------------------------------------------------------------------- on the fly
class SimulatedRods(IterableDataset):
    """Batches (X, re, im), standardised float32 tensors (B, R, NL), simulated on the fly with the kernel.

    [start, stop) is cut into contiguous pieces of batch_size structures (the last may be shorter; dropped
    with drop_last); piece p goes to shard p mod S, S = world_size × num_workers, shard = rank × num_workers
    + worker id. No two workers or ranks draw the same structure, their union is the range exactly once, and
    the batches are the same for the same (preset, seed, range, batch_size, world size, workers); structure
    i depends only on (preset, seed, i). With shuffle_blocks the order of the pieces is a permutation of
    (seed, epoch) (call `set_epoch` each epoch), the same on every rank.

    Use it with DataLoader(dataset, batch_size=None, num_workers=k). Inside workers, when k > 1, the kernel
    runs on one thread each (no oversubscription); otherwise on `threads` (0: the runtime default).

    Args:
        preset: a preset name, a preset TOML, a FAMILY.toml, or a family object (mamba_ctr.families).
        seed: sampling seed.
        start, stop: global structure index range.
        batch_size: structures per batch (> 0).
        normalisation: a Normalisation (e.g. of a pilot sample from an index range training never uses).
        backend: kernel backend ("auto", "compiled", "numba", "numpy").
        rank, world_size: the distributed rank; None for torch.distributed's when initialised, else 0 of 1.
        make_input: None for the standardised X of `normalisation`; else a picklable callable (intensity (B, R,
            NL), index of the batch's first structure) → X (B, C, NL) (e.g. nn.inputs.TrainingInput: measurement
            nuisances keyed by structure index, then the scale-free input).
    """

    def __init__(self, preset: str | os.PathLike | Any, seed: int, start: int, stop: int,
                 batch_size: int, normalisation: Normalisation, backend: str = "auto", shuffle_blocks: bool = False,
                 drop_last: bool = False, rank: int | None = None, world_size: int | None = None,
                 threads: int = 0, make_input: Any = None) -> None:
        super().__init__()
        self.make_input = make_input
        from ..families import resolve as resolve_family

        self.preset = resolve_family(preset)
        for name, value, minimum in (("seed", seed, 0), ("start", start, 0), ("stop", stop, 0),
                                     ("batch_size", batch_size, 1), ("threads", threads, 0)):
            check_count(name, value, minimum)
        if stop <= start:
            raise ValueError(f"the index range [{start}, {stop}) is empty")
        if not isinstance(normalisation, Normalisation):
            raise ValueError(f"normalisation must be a Normalisation, got {type(normalisation).__name__}")
        if normalisation.shape != self.preset.grid.shape:
            raise ValueError(f"normalisation is for grids {normalisation.shape}, preset {self.preset.name} has "
                             f"{self.preset.grid.shape}")
        if (rank is None) != (world_size is None):
            raise ValueError("give both rank and world_size, or neither")
        if world_size is not None and not (isinstance(world_size, (int, np.integer)) and world_size >= 1
                                           and isinstance(rank, (int, np.integer)) and 0 <= rank < world_size):
            raise ValueError(f"need 0 ≤ rank < world_size, got rank {rank!r}, world_size {world_size!r}")
        self.seed, self.start, self.stop, self.batch_size = int(seed), int(start), int(stop), int(batch_size)
        self.normalisation = normalisation
        self.backend = backend
        self.shuffle_blocks, self.drop_last = bool(shuffle_blocks), bool(drop_last)
        self.rank, self.world_size = rank, world_size
        self.threads = int(threads)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose piece order `shuffle_blocks` uses (as DistributedSampler.set_epoch)."""
        self.epoch = int(epoch)

    def _distribution(self) -> tuple[int, int]:
        if self.world_size is not None:
            return int(self.rank), int(self.world_size)  # type: ignore[arg-type]
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def pieces(self, rank: int = 0, world_size: int = 1, worker: int = 0, num_workers: int = 1) -> list:
        """The (lo, hi) index ranges of the batches of one worker of one rank, in the order yielded."""
        bounds = [(lo, min(lo + self.batch_size, self.stop)) for lo in range(self.start, self.stop, self.batch_size)]
        if self.drop_last and bounds[-1][1] - bounds[-1][0] < self.batch_size:
            bounds.pop()
        if self.shuffle_blocks:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(bounds))
            bounds = [bounds[p] for p in order]
        shards = world_size * num_workers
        return bounds[rank * num_workers + worker::shards]

    def __len__(self) -> int:
        """Batches of this rank (all its workers together)."""
        rank, world = self._distribution()
        return len(self.pieces(rank, world))

    def __iter__(self):
        rank, world = self._distribution()
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        threads = 1 if workers > 1 else self.threads
        pieces = self.pieces(rank, world, worker, workers)
        grid = self.preset.grid
        # presets draw their random numbers in blocks of BLOCK structures: sample the blocks a piece touches
        # once and slice them, unless this worker's pieces are too far apart to share blocks
        block = _presets.BLOCK
        share = world * workers * self.batch_size < block
        cached: tuple[int, int, Any] | None = None
        for lo, hi in pieces:
            if not share:
                structures = self.preset.sample(hi - lo, self.seed, lo)
            else:
                if cached is None or not (cached[0] <= lo and hi <= cached[1]):
                    c_lo = max(self.start, lo // block * block)
                    c_hi = min(self.stop, -(-hi // block) * block)
                    cached = (c_lo, c_hi, self.preset.sample(c_hi - c_lo, self.seed, c_lo))
                structures = cached[2][lo - cached[0]: hi - cached[0]]
            rods = simulate(structures, grid, backend=self.backend, dtype="float32", threads=threads)
            if self.make_input is None:
                yield self.normalisation.standardise(rods.intensity, rods.film_field, grid.bragg)
            else:
                re, im = self.normalisation.apply_targets(rods.film_field)
                yield tuple(torch.from_numpy(a) for a in (self.make_input(rods.intensity, lo), re, im))

    def batch_count(self) -> int:
        """Batches over all ranks and workers."""
        return math.ceil((self.stop - self.start) / self.batch_size) - int(
            self.drop_last and (self.stop - self.start) % self.batch_size != 0)
