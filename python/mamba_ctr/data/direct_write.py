"""HDF5 block files whose large arrays go to the disk straight from the kernel's buffers (issue 17 item 1).

h5py writes through the page cache: every byte is copied once more, and on a small VM each new cache page costs
a reclaim of an old one (2.3 GB of rods took 1–3.5 s of system time on 2 cores, more than the kernel). Here the
file is laid out by HDF5 as usual, with the large datasets allocated at creation (contiguous, 4096-byte aligned,
never filled); after the file is closed their bytes are written with `O_DIRECT` from page-aligned buffers
(`aligned_empty`) by `os.pwrite`. A reader sees an ordinary HDF5 file. Where direct I/O is refused (tmpfs, macOS,
an unaligned buffer) the same bytes are written by plain `pwrite`; the file is the same.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import h5py
import numpy as np

__all__ = ["ALIGN", "LARGE", "aligned_empty", "write_h5"]

ALIGN = 4096  # bytes: file offsets, buffer addresses and lengths of direct writes
LARGE = 1 << 20  # bytes: datasets at least this large are written directly
_CHUNK = 64 << 20  # bytes per pwrite call


def aligned_empty(shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """An uninitialised C-contiguous array whose data start on an ALIGN-byte boundary."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start: start + nbytes].view(dtype).reshape(shape)


def write_h5(path: str | os.PathLike, data: Mapping[str, np.ndarray],
             finish: Callable[[h5py.File], None] | None = None) -> None:
    """A new HDF5 file at `path` holding `data` (name → array; "a/b" makes group a); `finish(file)` adds anything
    else (groups, attributes) before it is closed. Arrays of LARGE bytes or more, C-contiguous and native, are
    written directly (module docstring). Nothing is fsync'd here."""
    direct: dict[str, np.ndarray] = {name: value for name, value in data.items() if _direct_candidate(value)}
    offsets: dict[str, int] = {}
    with h5py.File(path, "w", alignment_threshold=LARGE, alignment_interval=ALIGN) as f:
        for name, value in data.items():
            if name in direct:
                offsets[name] = _allocate(f, name, value)
            else:
                f.create_dataset(name, data=value)
        if finish is not None:
            finish(f)
    if direct:
        _write_at(Path(path), [(offsets[name], value) for name, value in direct.items()])


def _direct_candidate(value: np.ndarray) -> bool:
    return (isinstance(value, np.ndarray) and value.nbytes >= LARGE and value.flags.c_contiguous
            and value.dtype.isnative and value.dtype.kind in "fc")


def _allocate(f: h5py.File, name: str, value: np.ndarray) -> int:
    """Create dataset `name` like `value`, its file space allocated now and never filled; its file offset."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_layout(h5py.h5d.CONTIGUOUS)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    lcpl = h5py.h5p.create(h5py.h5p.LINK_CREATE)
    lcpl.set_create_intermediate_group(True)
    space = h5py.h5s.create_simple(value.shape)
    dataset = h5py.h5d.create(f.id, name.encode(), h5py.h5t.py_create(value.dtype, logical=True), space,
                              dcpl=dcpl, lcpl=lcpl)
    offset = dataset.get_offset()
    if offset is None:  # pragma: no cover - HDF5 allocated no space despite ALLOC_TIME_EARLY
        raise RuntimeError(f"HDF5 allocated no file space for {name}")
    return int(offset)


def _write_at(path: Path, items: list[tuple[int, np.ndarray]]) -> None:
    """Each array's bytes at its file offset: the aligned part by O_DIRECT where allowed, the rest plainly."""
    plain = os.open(path, os.O_WRONLY)
    direct = _open_direct(path)
    try:
        for offset, value in items:
            view = memoryview(value.reshape(-1).view(np.uint8).data)
            done = 0
            if direct is not None and offset % ALIGN == 0 and value.ctypes.data % ALIGN == 0:
                done = _pwrite_direct(direct, view[: len(view) - len(view) % ALIGN], offset)
            _pwrite(plain, view[done:], offset + done)
    finally:
        os.close(plain)
        if direct is not None:
            os.close(direct)


def _open_direct(path: Path) -> int | None:
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:  # pragma: no cover - macOS, Windows
        return None
    try:
        return os.open(path, os.O_WRONLY | flag)
    except OSError as error:  # tmpfs and some network file systems refuse it
        if error.errno in (errno.EINVAL, errno.EOPNOTSUPP):
            return None
        raise


def _pwrite_direct(fd: int, view: memoryview, offset: int) -> int:
    """Bytes written by direct I/O from the start of `view` (aligned); stops at the first refusal."""
    done = 0
    while done < len(view):
        try:
            written = os.pwrite(fd, view[done: done + _CHUNK], offset + done)
        except OSError as error:
            if error.errno != errno.EINVAL:
                raise
            break  # the device wants a larger alignment: the rest goes through the page cache
        done += written
        if written == 0 or written % ALIGN:
            break
    return done - done % ALIGN if done % ALIGN else done


def _pwrite(fd: int, view: memoryview, offset: int) -> None:
    done = 0
    while done < len(view):
        written = os.pwrite(fd, view[done: done + _CHUNK], offset + done)
        if written <= 0:  # pragma: no cover - a full disk raises instead
            raise OSError(errno.EIO, "short write")
        done += written
