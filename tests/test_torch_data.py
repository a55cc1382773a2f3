"""PyTorch data layer: RodsH5Dataset, Normalisation, train_val_split, SimulatedRods (needs torch)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader  # noqa: E402

import mamba_ctr  # noqa: E402
from mamba_ctr.data.generate import GenerateConfig, generate  # noqa: E402
from mamba_ctr.data.stats import file_stats  # noqa: E402
from mamba_ctr.data.torch_data import (  # noqa: E402
    Normalisation,
    RodsH5Dataset,
    SimulatedRods,
    train_val_split,
)
from mamba_ctr.physics import presets  # noqa: E402
from mamba_ctr.simulate import network_input  # noqa: E402

N = 120
PRESET = presets.get("paper-12L")


@pytest.fixture(scope="module")
def h5(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("torch") / "tiny.h5"
    generate(GenerateConfig(out=out, n=N, seed=3, block_size=64, threads=1, quiet=True))
    return out


@pytest.fixture(scope="module")
def norm(h5) -> Normalisation:
    return Normalisation.from_file(h5)


def _expected(h5: Path, norm: Normalisation, rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with h5py.File(h5) as f:
        intensity, field, bragg = f["intensity"][()][rows], f["film_field"][()][rows], f["grid/bragg"][()]
    X = (network_input(intensity, bragg).astype(np.float64) - norm.X_mean) / norm.X_std
    re = (field.real.astype(np.float64) - norm.U_re_mean) / norm.U_re_std
    im = (field.imag.astype(np.float64) - norm.U_im_mean) / norm.U_im_std
    return X, re, im


def test_import_without_torch_does_not_load_it():
    env = dict(os.environ, PYTHONPATH=str(Path(mamba_ctr.__file__).parent.parent))
    code = "import sys, mamba_ctr, mamba_ctr.data, mamba_ctr.data.stats; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_normalisation_from_file_matches_stats_and_roundtrips(h5, norm):
    stats = file_stats(h5)
    assert norm.X_mean == pytest.approx(float(stats.x.mean)) and norm.X_std == pytest.approx(float(stats.x.std))
    np.testing.assert_array_equal(norm.U_re_std, stats.u_re.std)
    part = Normalisation.from_file(h5, start=10, stop=50)
    ref = file_stats(h5, 10, 50)
    assert part.X_mean == pytest.approx(float(ref.x.mean))
    by_rows = Normalisation.from_file(h5, indices=range(10, 50))
    assert by_rows.X_mean == pytest.approx(part.X_mean, rel=1e-12)
    np.testing.assert_allclose(by_rows.U_im_std, part.U_im_std, rtol=1e-10)
    back = Normalisation.from_dict(json.loads(json.dumps(norm.to_dict())))
    assert back.X_mean == norm.X_mean
    np.testing.assert_array_equal(back.U_im_mean, norm.U_im_mean)
    with h5py.File(h5) as f:
        U = f["film_field"][:4]
    re, im = norm.apply_targets(U)
    assert re.dtype == np.float32 and re.shape == U.shape
    np.testing.assert_allclose(norm.invert_targets(re, im), U, rtol=1e-5, atol=1e-4 * np.abs(U).max())
    inverted = norm.invert_targets(torch.from_numpy(re), torch.from_numpy(im))
    assert inverted.dtype == torch.complex64
    np.testing.assert_allclose(inverted.numpy(), U, rtol=1e-5, atol=1e-4 * np.abs(U).max())
    with pytest.raises(ValueError, match="shape"):
        norm.apply_x(np.zeros((3, 5)))


def test_dataset_values_equal_standardised_file(h5, norm):
    rows = np.array([0, 7, 55, 119])
    ds = RodsH5Dataset(h5, indices=rows, normalisation=norm)
    assert len(ds) == 4
    X, re, im = _expected(h5, norm, rows)
    for i in range(4):
        x, r, m = ds[i]
        assert x.dtype == torch.float32 and x.shape == (16, 240)
        np.testing.assert_allclose(x.numpy(), X[i], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(r.numpy(), re[i], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(m.numpy(), im[i], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(ds[-1][0].numpy(), ds[3][0].numpy())
    # pickles without an open handle, also after a read
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._file is None
    np.testing.assert_array_equal(clone[2][1].numpy(), ds[2][1].numpy())
    with pytest.raises(IndexError, match="out of range"):
        ds[4]
    with pytest.raises(IndexError, match="out of range"):
        RodsH5Dataset(h5, indices=[0, N], normalisation=norm)
    ds.close()


def test_dataloader_workers_give_same_batches(h5, norm):
    train, _ = train_val_split(N, 0.1, seed=1)
    ds = RodsH5Dataset(h5, indices=train, normalisation=norm)
    ds[0]  # an open handle in the parent before forking must not leak into the workers

    def batches(workers: int) -> list:
        loader = DataLoader(ds, batch_size=16, shuffle=False, num_workers=workers)
        return [torch.cat([t.flatten() for t in batch]) for batch in loader]

    serial, parallel = batches(0), batches(2)
    assert len(serial) == len(parallel) == -(-len(train) // 16)
    for a, b in zip(serial, parallel, strict=True):
        assert torch.equal(a, b)


def test_dataloader_spawn_worker(h5, norm):
    ds = RodsH5Dataset(h5, indices=range(0, N, 10), normalisation=norm)
    ds[0]
    loader = DataLoader(ds, batch_size=6, num_workers=1, multiprocessing_context="spawn")
    got = torch.cat([batch[0] for batch in loader])
    assert torch.equal(got, torch.stack([ds[i][0] for i in range(len(ds))]))


def test_distributed_sampler_partitions(h5, norm):
    from torch.utils.data.distributed import DistributedSampler

    ds = RodsH5Dataset(h5, normalisation=norm)
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=0)
        seen += list(sampler)
    assert sorted(seen) == list(range(N))


def test_training_split_is_standardised(h5):
    train, val = train_val_split(N, 0.1, seed=0)
    assert len(train) == 108 and len(val) == 12 and not set(train) & set(val)
    assert sorted([*train, *val]) == list(range(N))
    again = train_val_split(N, 0.1, seed=0)
    np.testing.assert_array_equal(again[1], val)
    norm = Normalisation.from_file(h5, indices=train)
    loader = DataLoader(RodsH5Dataset(h5, indices=train, normalisation=norm), batch_size=len(train))
    X, re, im = next(iter(loader))
    assert abs(X.double().mean().item()) < 1e-5 and X.double().std(unbiased=False).item() == pytest.approx(1, abs=1e-5)
    for part in (re, im):
        assert part.double().mean(0).abs().max().item() < 1e-4
        std = part.double().std(0, unbiased=False)
        assert (std - 1).abs().max().item() < 1e-4


def test_bad_files(h5, norm, tmp_path):
    incomplete = tmp_path / "incomplete.h5"
    incomplete.write_bytes(h5.read_bytes())
    with h5py.File(incomplete, "r+") as f:
        f.attrs["complete"] = False
    with pytest.raises(ValueError, match="incomplete"):
        RodsH5Dataset(incomplete, normalisation=norm)
    other = tmp_path / "v2.h5"
    other.write_bytes(h5.read_bytes())
    with h5py.File(other, "r+") as f:
        f.attrs["format_version"] = 2
    with pytest.raises(ValueError, match="format version"):
        RodsH5Dataset(other)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(ValueError):
        RodsH5Dataset(junk)
    with pytest.raises(ValueError, match="val_fraction"):
        train_val_split(10, 1.0)


# ------------------------------------------------------------------------------------------------ on the fly
START, STOP, B = 5000, 5000 + 150, 32


@pytest.fixture(scope="module")
def direct(norm):
    rods = mamba_ctr.simulate(PRESET.sample(STOP - START, 7, START), PRESET.grid)
    return norm.standardise(rods.intensity, rods.film_field, PRESET.grid.bragg)


def _by_index(batches_with_ranges) -> dict[int, tuple]:
    found: dict[int, tuple] = {}
    for (lo, hi), (X, re, im) in batches_with_ranges:
        assert X.shape == (hi - lo, 16, 240)
        for j, index in enumerate(range(lo, hi)):
            assert index not in found, f"structure {index} drawn twice"
            found[index] = (X[j], re[j], im[j])
    return found


def _check_cover(found: dict, direct) -> None:
    assert sorted(found) == list(range(START, STOP))
    for index, (X, re, im) in found.items():
        k = index - START
        for got, want in zip((X, re, im), direct, strict=True):
            assert torch.equal(got, want[k]), f"structure {index} differs from a direct simulation"


def test_stream_ranks_cover_range_once(norm, direct):
    found = []
    for rank in range(2):
        ds = SimulatedRods("paper-12L", 7, START, STOP, B, norm, rank=rank, world_size=2)
        assert len(ds) == len(ds.pieces(rank, 2))
        found += list(zip(ds.pieces(rank, 2), ds, strict=True))
    assert len(found) == 5
    _check_cover(_by_index(found), direct)


def test_stream_workers_cover_range_once_and_reproducible(norm, direct):
    ds = SimulatedRods(PRESET, 7, START, STOP, B, norm, shuffle_blocks=True)
    ds.set_epoch(3)
    order = [p for w in range(2) for p in ds.pieces(0, 1, w, 2)]

    def run() -> list:
        return list(DataLoader(ds, batch_size=None, num_workers=2))

    first = run()
    # DataLoader interleaves workers: batch k comes from worker k mod 2
    pieces = [ds.pieces(0, 1, w, 2) for w in range(2)]
    ranges = [pieces[k % 2][k // 2] for k in range(len(first))]
    assert sorted(ranges) == sorted(order)
    _check_cover(_by_index(zip(ranges, first, strict=True)), direct)
    second = run()
    assert all(torch.equal(a, b) for x, y in zip(first, second, strict=True) for a, b in zip(x, y, strict=True))
    serial = list(ds)  # one process: pieces in the order of pieces(0, 1)
    assert [tuple(x.shape) for x, _, _ in serial] == [(hi - lo, 16, 240) for lo, hi in ds.pieces()]


def test_stream_drop_last_and_bad_input(norm):
    ds = SimulatedRods("paper-12L", 0, 0, 100, 32, norm, drop_last=True)
    assert ds.pieces() == [(0, 32), (32, 64), (64, 96)] and ds.batch_count() == 3
    for kwargs, message in (({"batch_size": 0}, "batch_size"), ({"batch_size": -3}, "batch_size"),
                            ({"start": 10, "stop": 10}, "empty"), ({"start": -1}, "start"),
                            ({"rank": 2, "world_size": 2}, "rank"), ({"rank": 0}, "both")):
        args = {"preset": "paper-12L", "seed": 0, "start": 0, "stop": 100, "batch_size": 8,
                "normalisation": norm, **kwargs}
        with pytest.raises(ValueError, match=message):
            SimulatedRods(**args)
    with pytest.raises(ValueError, match="preset"):
        SimulatedRods("no-such-preset", 0, 0, 100, 8, norm)
    with pytest.raises(ValueError, match="normalisation"):
        SimulatedRods("paper-12L", 0, 0, 100, 8, None)
