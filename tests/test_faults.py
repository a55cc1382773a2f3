"""Fault injection (issue 18 item 4): kill -9 at random points of generate and train, a full disk (ENOSPC) in
the writers, and a checkpoint whose pickle would run code. Fast profile: a few kill points; the 20-point version
is benchmarks/test_faults_long.py (KILL_POINTS there).

Properties: a killed `generate` resumed with --resume gives the bitwise content of an uninterrupted run; a
killed `train` leaves a loadable last checkpoint and --resume continues from it with the same metadata; ENOSPC
is one line, exit 2, keeps what was written and can be resumed; a malicious checkpoint is refused before any of
its code runs.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import mamba_ctr
from mamba_ctr.cli import main

KILL_POINTS = int(os.environ.get("MAMBA_CTR_KILL_POINTS", "2"))  # generate; train: MAMBA_CTR_TRAIN_KILL_POINTS
TRAIN_KILL_POINTS = int(os.environ.get("MAMBA_CTR_TRAIN_KILL_POINTS", "1"))
OUTCOMES: dict[str, list[str]] = {"generate": [], "train": []}  # what each kill point did (the long profile prints)
GENERATE = ["--n", "400", "--seed", "3", "--block-size", "16", "--threads", "1", "--backend", "numpy",
            "--preset", "paper-4L", "--join", "copy", "--quiet"]


def _env() -> dict:
    env = dict(os.environ)
    parent = str(Path(mamba_ctr.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [parent, env.get("PYTHONPATH")]))
    return env


def _contents(path: Path) -> dict[str, bytes]:
    import h5py

    found: dict[str, bytes] = {}

    def visit(name: str, obj) -> None:
        if isinstance(obj, h5py.Dataset):
            found[name] = obj.dtype.str.encode() + repr(obj.shape).encode() + obj[()].tobytes()

    with h5py.File(path, "r") as f:
        f.visititems(visit)
        found["attrs"] = repr(sorted((k, str(v)) for k, v in f.attrs.items() if k not in ("created",))).encode()
    return found


def _kill_after(argv: list[str], seconds: float, cwd: Path) -> int:
    """Run `mamba-ctr argv` in a subprocess and SIGKILL it after `seconds` (if still running); its exit code."""
    process = subprocess.Popen([sys.executable, "-m", "mamba_ctr.cli", *argv], env=_env(), cwd=cwd,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
    _, err = process.communicate(timeout=120)
    assert b"Traceback" not in err, err.decode()
    return process.returncode


@pytest.fixture(scope="module")
def generate_reference(tmp_path_factory) -> tuple[Path, float]:
    out = tmp_path_factory.mktemp("gen") / "ref.h5"
    started = time.perf_counter()
    assert _kill_after(["generate", "--out", str(out), *GENERATE], 600, out.parent) == 0
    return out, time.perf_counter() - started


def kill_generate(tmp_path: Path, reference: Path, seconds: float) -> str:
    """Kill generate after `seconds`, resume until complete, compare with the reference; what happened."""
    out = tmp_path / "killed.h5"
    code = _kill_after(["generate", "--out", str(out), *GENERATE], seconds, tmp_path)
    if code == 0:
        outcome = "finished before the kill"
    elif out.exists():  # killed after the final rename (the commit point): the output is complete
        assert code == -signal.SIGKILL
        outcome = "killed after completing its output"
    elif not Path(f"{out}.parts").exists():  # killed while starting: there is nothing to resume
        assert code == -signal.SIGKILL and not out.exists()
        assert main(["generate", "--out", str(out), *GENERATE]) == 0
        outcome = "killed before any output, rerun"
    else:
        assert code == -signal.SIGKILL and not out.exists()
        assert main(["generate", "--out", str(out), *GENERATE]) == 2  # not silently restarted
        assert main(["generate", "--out", str(out), *GENERATE, "--resume"]) == 0
        outcome = "killed, resumed"
    assert _contents(out) == _contents(reference)
    return outcome


@pytest.mark.slow  # ~25 s on a loaded 2-core machine: three subprocesses with their imports
def test_generate_killed_at_random_points_resumes_bit_identical(tmp_path, generate_reference):
    reference, duration = generate_reference
    outcomes = []
    for i, fraction in enumerate(np.random.default_rng(18).uniform(0.3, 0.95, KILL_POINTS)):
        folder = tmp_path / f"kill{i}"
        folder.mkdir()
        outcomes.append(kill_generate(folder, reference, fraction * duration))
    OUTCOMES["generate"] += outcomes
    assert "killed, resumed" in outcomes, outcomes


TRAIN = ["--arch", "rods", "--widths", "8,16", "--dilations", "1", "--epochs", "4", "--batch-size", "8",
         "--val-every", "3", "--threads", "1", "--quiet"]


@pytest.fixture(scope="module")
def train_data(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    out = tmp_path_factory.mktemp("traindata") / "d.h5"
    assert main(["generate", "--out", str(out), "--n", "48", "--preset", "paper-4L", "--join", "copy",
                 "--quiet"]) == 0
    return out


def kill_train(tmp_path: Path, data: Path, seconds: float) -> str:
    """Kill train after `seconds`; its last checkpoint loads and --resume continues from it with the same
    metadata (history prefix, architecture, normalisation, grid)."""
    from mamba_ctr.nn.checkpoint import load_checkpoint

    out = tmp_path / "run"
    argv = ["train", "--data", str(data), "--out", str(out), *TRAIN]
    code = _kill_after(argv, seconds, tmp_path)
    if not (out / "last.json").exists():
        assert code != 0 and main(argv) == 0  # killed before its first checkpoint: a fresh start is allowed
        return "killed before the first checkpoint"
    before = load_checkpoint(out / "last").metadata
    if code == 0:
        return "finished before the kill"
    assert main([*argv, "--resume"]) == 0
    after = load_checkpoint(out / "last").metadata
    assert after["history"][:len(before["history"])] == before["history"]
    for key in ("architecture", "arch_kwargs", "normalisation", "grid", "preset"):
        assert after[key] == before[key], key
    assert after["history"][-1]["epoch"] == 4
    return "killed, resumed"


@pytest.mark.slow  # ~30 s: two training subprocesses (torch imports)
def test_train_killed_resumes_from_its_last_checkpoint(tmp_path, train_data):
    started = time.perf_counter()
    reference = tmp_path / "ref"
    assert _kill_after(["train", "--data", str(train_data), "--out", str(reference), *TRAIN], 600, tmp_path) == 0
    duration = time.perf_counter() - started
    outcomes = []
    for i, fraction in enumerate(np.random.default_rng(18).uniform(0.5, 0.95, TRAIN_KILL_POINTS)):
        folder = tmp_path / f"kill{i}"
        folder.mkdir()
        outcomes.append(kill_train(folder, train_data, fraction * duration))
    OUTCOMES["train"] += outcomes
    assert "killed, resumed" in outcomes, outcomes


def _full_disk_after(monkeypatch, module, name: str, calls: int) -> None:
    """module.name raises ENOSPC from its (calls + 1)-th call on."""
    original, seen = getattr(module, name), [0]

    def writer(*args, **kwargs):
        seen[0] += 1
        if seen[0] > calls:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, writer)


def test_generate_on_a_full_disk_is_one_line_keeps_blocks_and_resumes(tmp_path, monkeypatch, capsys,
                                                                       generate_reference):
    out = tmp_path / "full.h5"
    with monkeypatch.context() as patch:
        _full_disk_after(patch, os, "fsync", 5)  # every block is fsync'd before its rename: the 6th fails
        assert main(["generate", "--out", str(out), *GENERATE]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err, err
    blocks = sorted(Path(f"{out}.parts").glob("block-*.h5"))
    assert len(blocks) >= 1 and not out.exists()
    import h5py

    for block in blocks:  # what was written before the disk filled up is complete, not truncated
        with h5py.File(block, "r") as f:
            assert f["intensity"].shape[0] == 16
    assert main(["generate", "--out", str(out), *GENERATE, "--resume"]) == 0
    assert _contents(out) == _contents(generate_reference[0])


def test_train_on_a_full_disk_is_one_line_and_keeps_the_last_checkpoint(tmp_path, monkeypatch, capsys, train_data):
    from mamba_ctr.nn.checkpoint import load_checkpoint

    out = tmp_path / "run"
    argv = ["train", "--data", str(train_data), "--out", str(out), *TRAIN]
    with monkeypatch.context() as patch:
        _full_disk_after(patch, os, "fsync", 12)
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err, err
    before = load_checkpoint(out / "last").metadata
    assert main([*argv, "--resume"]) == 0
    after = load_checkpoint(out / "last").metadata
    assert after["history"][:len(before["history"])] == before["history"]


class _Payload:
    """Unpickling this runs `touch <marker>` (what a malicious checkpoint would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_whose_pickle_would_run_code_is_refused_without_running_it(tmp_path, capsys):
    pytest.importorskip("torch")
    import torch

    from mamba_ctr import models
    from mamba_ctr.errors import InputError

    marker = tmp_path / "pwned"
    shipped = Path(models.__file__).parent
    metadata = json.loads((shipped / "paper-12L.json").read_text())
    torch.save({"weights": _Payload(marker)}, tmp_path / "evil.pt", pickle_protocol=pickle.DEFAULT_PROTOCOL)
    (tmp_path / "evil.json").write_text(json.dumps({**metadata, "weights": "evil.pt"}))
    with pytest.raises(InputError, match="refused"):
        models.load(tmp_path / "evil")
    (tmp_path / "rods.csv").write_text("h,k,L,intensity\n0,0,0.1,1\n")
    assert main(["predict", "--input", str(tmp_path / "rods.csv"), "--model", str(tmp_path / "evil")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not marker.exists()
    shutil.rmtree(tmp_path / "mamba-ctr-predict", ignore_errors=True)


def test_generate_full_disk_during_a_direct_write_resumes_to_the_same_file(tmp_path, monkeypatch, capsys):
    """ENOSPC from the direct-I/O pwrite of a block's rods (blocks of ≥ 1 MiB of rods): one line, exit 2, the
    finished blocks intact, and --resume gives the file of an uninterrupted run."""
    argv = ["--preset", "paper-12L", "--n", "300", "--seed", "2", "--block-size", "100", "--threads", "1",
            "--join", "copy", "--quiet"]
    reference = tmp_path / "reference.h5"
    assert main(["generate", "--out", str(reference), *argv]) == 0
    out = tmp_path / "full.h5"
    with monkeypatch.context() as patch:
        _full_disk_after(patch, os, "pwrite", 3)  # blocks of 100: intensity and film field ≥ 1 MiB each
        assert main(["generate", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err, err
    assert not out.exists() and not list(Path(f"{out}.parts").glob(".*.tmp*"))  # no half-written block kept
    assert main(["generate", "--out", str(out), *argv, "--resume"]) == 0
    assert _contents(out) == _contents(reference)
