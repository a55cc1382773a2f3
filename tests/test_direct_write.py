"""Block files written by direct I/O read back as ordinary HDF5, bit for bit (mamba_ctr.data.direct_write)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from mamba_ctr.data import direct_write
from mamba_ctr.data.direct_write import ALIGN, LARGE, aligned_empty, write_h5


def _arrays(rows: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(rows)
    intensity = aligned_empty((rows, 16, 240), np.float32)
    intensity[...] = rng.random(intensity.shape, np.float32)
    field = aligned_empty((rows, 16, 240), np.complex64)
    field.real, field.imag = rng.standard_normal(field.shape), rng.standard_normal(field.shape)
    return {"intensity": intensity, "film_field": field, "params/c": rng.random((rows, 13)),
            "labels/wide": rng.random((LARGE // 8 // 13 + 1, 13)),  # >= LARGE, float64, in a group
            "small": np.arange(5, dtype=np.int64)}


def _check(path, data):
    with h5py.File(path, "r") as f:
        for name, value in data.items():
            assert f[name].dtype == value.dtype
            np.testing.assert_array_equal(f[name][()], value, err_msg=name)
        assert f.attrs["complete"]


@pytest.mark.parametrize("rows", [1, 67, 1024])  # 67 rows: lengths that are not a multiple of ALIGN
def test_round_trip(tmp_path, rows):
    data = _arrays(rows)
    write_h5(tmp_path / "b.h5", data, lambda f: f.attrs.update({"complete": True}))
    _check(tmp_path / "b.h5", data)
    if rows == 1024:
        assert data["intensity"].nbytes >= LARGE
        with h5py.File(tmp_path / "b.h5", "r") as f:
            assert f["intensity"].id.get_offset() % ALIGN == 0  # laid out for direct I/O


def test_without_direct_io(tmp_path, monkeypatch):
    """Where O_DIRECT is refused (tmpfs, macOS) the same file is written through the page cache."""
    monkeypatch.setattr(direct_write, "_open_direct", lambda path: None)
    data = _arrays(1024)
    write_h5(tmp_path / "b.h5", data, lambda f: f.attrs.update({"complete": True}))
    _check(tmp_path / "b.h5", data)


def test_unaligned_buffer(tmp_path):
    """A buffer that does not start on a page goes through the page cache, not to a refused direct write."""
    data = _arrays(1024)
    raw = np.empty(data["intensity"].nbytes + 4, np.uint8)
    shifted = raw[4:].view(np.float32).reshape(data["intensity"].shape)
    shifted[...] = data["intensity"]
    data["intensity"] = shifted
    write_h5(tmp_path / "b.h5", data, lambda f: f.attrs.update({"complete": True}))
    _check(tmp_path / "b.h5", data)


def test_aligned_empty():
    for shape, dtype in [((3, 5), np.float32), ((1000, 7), np.complex128), ((0, 4), np.float64)]:
        a = aligned_empty(shape, dtype)
        assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous
        assert a.ctypes.data % ALIGN == 0 or a.size == 0
