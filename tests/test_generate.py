"""Dataset generation: determinism, crash safety (really killed subprocesses), merge, stats, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import mamba_ctr
from mamba_ctr.cli import main
from mamba_ctr.data import read_rods
from mamba_ctr.data.generate import GenerateConfig, generate, merge, parse_shard, shard_range
from mamba_ctr.data.stats import Stats, file_stats
from mamba_ctr.physics import presets
from mamba_ctr.simulate import network_input

N = 300


def _generate(out: Path, *args: str) -> int:
    return main(["generate", "--out", str(out), "--quiet", *args])


def contents(path: Path) -> dict[str, bytes]:
    """Every dataset of the file as raw bytes (bitwise comparison; NaN labels included), stats aside."""
    found: dict[str, bytes] = {}

    def visit(name: str, obj) -> None:
        if isinstance(obj, h5py.Dataset) and not name.startswith("stats"):
            found[name] = obj.dtype.str.encode() + repr(obj.shape).encode() + obj[()].tobytes()

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return found


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "ref.h5"
    assert _generate(out, "--n", str(N), "--seed", "5", "--block-size", "128", "--threads", "1") == 0
    return out


def test_layout_attrs_and_reader(reference):
    grid, intensity, field, attrs = read_rods(reference)
    assert intensity.shape == (N, 16, 240) and intensity.dtype == np.float32
    assert field.dtype == np.complex64 and grid.shape == (16, 240)
    assert attrs["format_version"] == 1 and attrs["complete"] and attrs["seed"] == 5
    assert json.loads(attrs["preset"])["name"] == "paper-12L"
    assert (attrs["start"], attrs["stop"], attrs["n_total"], attrs["shard"]) == (0, N, N, "")
    assert "created_by" in attrs and "intensity" in json.loads(attrs["units"])
    with h5py.File(reference) as f:
        assert f["intensity"].is_virtual and f.attrs["data_token"]
        assert "d_B_5" in f["labels"] and f["params/c"].shape == (N, 13)
        assert (f["stats"].attrs["start"], f["stats"].attrs["stop"]) == (0, N)
    assert not Path(str(reference) + ".parts").exists()
    assert sorted(p.name for p in Path(str(reference) + ".data").iterdir())[:2] == [
        "block-000000000000-000000000128.h5", "block-000000000128-000000000256.h5"]
    # the same as simulating in memory
    preset = presets.get("paper-12L")
    from mamba_ctr.simulate import simulate

    rods = simulate(preset.sample(N, 5), preset.grid)
    assert np.array_equal(rods.intensity, intensity) and np.array_equal(rods.film_field, field)


def test_deterministic_across_threads_and_block_sizes(tmp_path, reference):
    out = tmp_path / "other.h5"
    assert _generate(out, "--n", str(N), "--seed", "5", "--block-size", "77", "--threads", "2") == 0
    assert contents(out) == contents(reference)


def test_shards_merge_to_one_run(tmp_path, reference):
    shards = []
    for i, block in enumerate((50, 31, 1000)):
        shard = tmp_path / f"s{i}.h5"
        assert _generate(shard, "--n", str(N), "--seed", "5", "--shard", f"{i}/3", "--block-size", str(block)) == 0
        shards.append(shard)
    with h5py.File(shards[1]) as f:
        assert (f.attrs["start"], f.attrs["stop"], f.attrs["shard"]) == (100, 200, "1/3")
    merged = tmp_path / "merged.h5"
    assert main(["merge", str(shards[2]), str(shards[0]), str(shards[1]), "--out", str(merged)]) == 0
    assert contents(merged) == contents(reference)
    with h5py.File(merged) as f:
        assert (f.attrs["start"], f.attrs["stop"], f.attrs["shard"]) == (0, N, "")
    # statistics: one pass == shards merged (Chan) == merged file == numpy in memory
    one_pass = file_stats(reference)
    by_shard = file_stats(shards[0]).merge(file_stats(shards[1])).merge(file_stats(shards[2]))
    grid, intensity, field, _ = read_rods(reference)
    X = network_input(intensity, grid.bragg).astype(np.float64)  # what the network sees (float32 ln I)
    numpy_stats = {"X_mean": X.mean(), "X_std": X.std(), "U_re_mean": field.real.astype(float).mean(0),
                   "U_re_std": field.real.astype(float).std(0), "U_im_mean": field.imag.astype(float).mean(0),
                   "U_im_std": field.imag.astype(float).std(0)}
    for stats in (by_shard, file_stats(merged), file_stats(reference, recompute=True),
                  Stats.of_arrays(intensity, field, grid.bragg)):
        summary, expected = stats.summary(), one_pass.summary()
        assert (summary["start"], summary["stop"]) == (0, N)
        for key, value in numpy_stats.items():
            # X = ln I: the stored /stats come from the kernel's log, numpy's float32 log differs by an ulp
            rtol = 1e-7 if key.startswith("X") else 1e-12
            np.testing.assert_allclose(summary[key], expected[key], rtol=rtol, atol=0)
            np.testing.assert_allclose(summary[key], value, rtol=rtol, atol=rtol * np.abs(value).max())


def test_stats_of_an_index_range_and_cli(tmp_path, reference, capsys):
    grid, intensity, field, _ = read_rods(reference)
    part = file_stats(reference, 40, 170).summary()
    expected = Stats.of_arrays(intensity[40:170], field[40:170], grid.bragg, start=40).summary()
    assert (part["start"], part["stop"]) == (40, 170)
    np.testing.assert_allclose(part["X_mean"], expected["X_mean"], rtol=1e-12)
    np.testing.assert_allclose(part["U_im_std"], expected["U_im_std"], rtol=1e-12)
    assert main(["stats", str(reference), "--start", "40", "--stop", "170", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["X_std"] == pytest.approx(expected["X_std"], rel=1e-12)
    assert main(["stats", str(reference)]) == 0
    assert "X = ln I" in capsys.readouterr().out


def _run_env() -> dict:
    """The environment for subprocesses: they import the same mamba_ctr as this test (installed or in-tree)."""
    env = dict(os.environ)
    package_parent = str(Path(mamba_ctr.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    return env


KILL_ARGS = ["--n", "600", "--seed", "9", "--block-size", "20", "--threads", "1", "--backend", "numpy"]


@pytest.fixture(scope="module")
def kill_reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("killref") / "ref.h5"
    assert _generate(out, *KILL_ARGS) == 0
    return out


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM], ids=["KILL", "INT", "TERM"])
def test_killed_run_resumes_to_the_same_content(tmp_path, kill_reference, sig):
    out = tmp_path / "killed.h5"
    parts = Path(str(out) + ".parts")
    # the default SIGINT disposition in the child: a test run started in the background by a non-interactive shell
    # inherits SIGINT ignored, and Python then never raises KeyboardInterrupt
    process = subprocess.Popen([sys.executable, "-m", "mamba_ctr.cli", "generate", "--out", str(out), *KILL_ARGS],
                               env=_run_env(), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not list(parts.glob("block-*.h5")):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no block file appeared"
        time.sleep(0.002)
    process.send_signal(sig)
    _, err = process.communicate(timeout=60)
    assert process.returncode != 0
    assert b"Traceback" not in err
    assert not out.exists(), "the run finished before the signal: make it longer"
    with pytest.raises(FileNotFoundError):
        read_rods(out)
    for leftover in [*parts.glob("*.tmp"), *parts.glob(".*.tmp.*")]:  # a half-written file is never complete
        with pytest.raises(ValueError):
            read_rods(leftover)
    finished = list(parts.glob("block-*.h5"))
    assert 1 <= len(finished) < 30
    # without --resume an interrupted run is not silently restarted
    assert _generate(out, *KILL_ARGS) == 2
    assert len(list(parts.glob("block-*.h5"))) == len(finished)
    # a different configuration cannot resume it
    assert _generate(out, *KILL_ARGS, "--seed", "10", "--resume") == 2
    assert _generate(out, *KILL_ARGS, "--resume") == 0
    assert contents(out) == contents(kill_reference)
    assert not parts.exists()


def test_config_file_and_flags_override(tmp_path, reference):
    config = tmp_path / "gen.toml"
    config.write_text(f'preset = "12L"\nn = {N}\nseed = 1\nblock_size = 64\nout = "{tmp_path / "x.h5"}"\n')
    out = tmp_path / "from_config.h5"
    assert main(["generate", "--config", str(config), "--seed", "5", "--out", str(out), "--quiet"]) == 0
    assert contents(out) == contents(reference)


def test_user_preset_file(tmp_path):
    spec = tmp_path / "thin.toml"
    spec.write_text('base = "paper-12L"\nfilm_layers = [2, 3]\nrough_top = true\ndelta_z = 0.02\n')
    out = tmp_path / "thin.h5"
    assert _generate(out, "--preset", str(spec), "--n", "50") == 0
    with h5py.File(out) as f:
        preset = json.loads(f.attrs["preset"])
        assert preset["film_layers"] == [2, 3] and preset["rough_top"] and preset["delta_z"] == 0.02
        assert preset["name"] == "paper-12L+thin" and "occ_top" in f["labels"]


def test_python_api(tmp_path, reference):
    out = generate(GenerateConfig(out=tmp_path / "api.h5", n=N, seed=5, block_size=1000, quiet=True))
    assert contents(out) == contents(reference)
    assert shard_range(10, (2, 3)) == (6, 10) and parse_shard(" 0/1 ") == (0, 1)
    assert [shard_range(7, (i, 4)) for i in range(4)] == [(0, 1), (1, 3), (3, 5), (5, 7)]


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("args,message", [
    (["--preset", "nope"], "unknown preset"),
    (["--n", "0"], "n must be"),
    (["--n", "-5"], "n must be"),
    (["--shard", "3/2"], "0 ≤ i < K"),
    (["--shard", "a/b"], "shard must be i/K"),
    (["--shard", "1"], "shard must be i/K"),
    (["--block-size", "0"], "block_size"),
    (["--shard", "0/11"], "holds no structures"),
    (["--preset", "missing.toml"], "no such TOML file"),
])
def test_bad_generate_arguments(tmp_path, capsys, args, message):
    out = tmp_path / "bad.h5"
    assert main(["generate", "--out", str(out), "--n", "10", "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists() and not Path(str(out) + ".parts").exists()


def test_existing_output_is_not_touched(tmp_path, reference, capsys):
    out = tmp_path / "keep.h5"
    out.write_bytes(reference.read_bytes())
    before = out.read_bytes()
    assert _generate(out, "--n", "10") == 2
    assert "exists" in capsys.readouterr().err
    assert out.read_bytes() == before and not Path(str(out) + ".parts").exists()
    assert main(["merge", str(reference), "--out", str(out)]) == 2
    assert out.read_bytes() == before
    # --overwrite replaces it only once the new file is complete
    assert _generate(out, "--n", "10", "--overwrite") == 0
    assert read_rods(out)[1].shape[0] == 10


def test_unwritable_path_and_nothing_to_resume(tmp_path, capsys):
    assert _generate(tmp_path / "no" / "such" / "dir.h5", "--n", "10") == 2
    assert "does not exist" in capsys.readouterr().err
    assert _generate(tmp_path / "fresh.h5", "--n", "10", "--resume") == 2
    assert "nothing to resume" in capsys.readouterr().err
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert _generate(locked / "x.h5", "--n", "10") == 2
        assert "permission" in capsys.readouterr().err


def test_bad_files_for_stats_and_merge(tmp_path, reference, capsys):
    other_version = tmp_path / "v2.h5"
    other_version.write_bytes(reference.read_bytes())
    with h5py.File(other_version, "a") as f:
        f.attrs["format_version"] = 2
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(reference.read_bytes()[: reference.stat().st_size // 2])
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not hdf5 at all" * 100)
    for path, message in ((other_version, "format version"), (truncated, ""), (garbage, "not a readable HDF5"),
                          (tmp_path / "absent.h5", "no such file")):
        for argv in (["stats", str(path)], ["merge", str(path), "--out", str(tmp_path / "m.h5")]):
            assert main(argv) == 2, argv
            err = capsys.readouterr().err
            assert message in err and err.count("\n") == 1 and "Traceback" not in err
            assert not (tmp_path / "m.h5").exists()
    assert main(["stats", str(reference), "--start", "10", "--stop", str(N + 1)]) == 2
    assert "outside" in capsys.readouterr().err


def test_merge_refuses_mismatched_shards(tmp_path):
    def shard(name: str, *args: str) -> Path:
        path = tmp_path / f"{name}.h5"
        assert _generate(path, "--n", "40", *args) == 0
        return path

    a0, a1, a2 = (shard(f"a{i}", "--shard", f"{i}/3") for i in range(3))
    b1 = shard("b1", "--shard", "1/3", "--seed", "1")
    c1 = shard("c1", "--shard", "1/3", "--preset", "paper-4L")
    d1 = shard("d1", "--shard", "1/2")
    e1 = shard("e1", "--shard", "1/3", "--dtype", "float64")
    out = tmp_path / "m.h5"
    for shards, message in (([a0, b1, a2], "different seed"), ([a0, c1, a2], "different preset"),
                            ([a0, e1, a2], "different dtype"), ([a0, a2], "missing"),
                            ([a0, a1], "missing"), ([a0, a1, d1], "overlapping"), ([a0, a1, a2, a1], "overlapping")):
        with pytest.raises(ValueError, match=message):
            merge(shards, out)
        assert not out.exists()
    merge([a0, a1, a2], out)
    assert read_rods(out)[1].shape[0] == 40


def test_cli_errors_have_no_traceback_in_a_subprocess(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mamba_ctr.cli", "generate", "--out", str(tmp_path / "x.h5"),
                             "--n", "10", "--shard", "a/b"], env=_run_env(), capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("mamba-ctr generate: error:")


def test_resume_after_the_output_was_renamed_and_locking(tmp_path, reference):
    from mamba_ctr import _backend
    from mamba_ctr.data.generate import _manifest, resolve_preset

    out = tmp_path / "late.h5"
    assert _generate(out, "--n", str(N), "--seed", "5", "--block-size", "128", "--join", "copy") == 0
    with h5py.File(out) as f:
        assert f["intensity"].chunks[0] < N and not f["intensity"].is_virtual
    assert not Path(str(out) + ".data").exists()
    # as if killed between the final rename and removing the parts directory
    parts = Path(str(out) + ".parts")
    parts.mkdir()
    config = GenerateConfig(out=out, n=N, seed=5, block_size=128, resume=True, quiet=True, join="copy")
    manifest = _manifest(config, resolve_preset("paper-12L"), _backend.resolve("auto"))
    (parts / "manifest.json").write_text(json.dumps(manifest))
    assert generate(config) == out and not parts.exists()
    assert contents(out) == contents(reference)
    # a second run on the same parts directory is refused while another holds its lock
    other = tmp_path / "locked.h5"
    other_parts = Path(str(other) + ".parts")
    other_parts.mkdir()
    fcntl = pytest.importorskip("fcntl")
    with open(other_parts / "lock", "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        with pytest.raises(ValueError, match="another mamba-ctr generate"):
            generate(GenerateConfig(out=other, n=10, overwrite=True, quiet=True))


def _run_in_pty(argv: list[str], cwd: Path) -> str:
    """Output of a subprocess whose stdout/stderr are a 120-column terminal."""
    import pty
    import struct

    fcntl, termios = pytest.importorskip("fcntl"), pytest.importorskip("termios")
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
            os.chdir(cwd)
            os.execve(sys.executable, [sys.executable, *argv], _run_env())
        finally:
            os._exit(127)
    output = b""
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        output += data
    os.waitpid(pid, 0)
    os.close(fd)
    return output.decode(errors="replace")


def test_progress_bar_only_on_a_terminal(tmp_path):
    command = ["-m", "mamba_ctr.cli", "generate", "--n", "60", "--block-size", "20"]
    assert "100%|" in _run_in_pty([*command, "--out", "a.h5"], tmp_path)
    assert "%|" not in _run_in_pty([*command, "--out", "b.h5", "--quiet"], tmp_path)
    result = subprocess.run([sys.executable, *command, "--out", "c.h5"], cwd=tmp_path, env=_run_env(),
                            capture_output=True, text=True)
    assert result.returncode == 0 and "%|" not in result.stderr and "wrote structures [0, 60)" in result.stdout
    assert all((tmp_path / name).is_file() for name in ("a.h5", "b.h5", "c.h5"))


# ------------------------------------------------------------------------------------------------ --join vds
def test_vds_pair_moves_together_and_missing_blocks_are_detected(tmp_path, reference):
    out = tmp_path / "a" / "v.h5"
    out.parent.mkdir()
    assert _generate(out, "--n", str(N), "--seed", "5", "--block-size", "100") == 0
    moved = tmp_path / "b"
    moved.mkdir()
    for path in (out, Path(str(out) + ".data")):
        path.rename(moved / path.name)
    out = moved / "v.h5"
    cwd = os.getcwd()
    os.chdir(tmp_path)  # sources resolve relative to the file, not to the working directory
    try:
        assert contents(out) == contents(reference)
        recomputed = file_stats(out, recompute=True).summary()["X_mean"]  # numpy's log; stored: the kernel's
        assert recomputed == pytest.approx(file_stats(reference).summary()["X_mean"], rel=1e-7)
    finally:
        os.chdir(cwd)
    (moved / "v.h5.data" / "block-000000000100-000000000200.h5").unlink()
    with pytest.raises(ValueError, match="missing"):
        read_rods(out)
    assert main(["stats", str(out)]) == 2


def test_vds_resume_after_the_parts_were_renamed(tmp_path, reference):
    """Killed between renaming FILE.h5.parts to FILE.h5.data and renaming FILE.h5 into place."""
    out = tmp_path / "late.h5"
    assert _generate(out, "--n", str(N), "--seed", "5", "--block-size", "128") == 0
    out.unlink()
    data = Path(str(out) + ".data")
    assert _generate(out, "--n", str(N), "--seed", "5", "--block-size", "128") == 2  # not silently restarted
    assert _generate(out, "--n", str(N), "--seed", "5", "--block-size", "128", "--resume") == 0
    assert contents(out) == contents(reference) and data.is_dir()
    assert not Path(str(out) + ".parts").exists()
    assert _generate(out, "--n", str(N), "--seed", "5", "--block-size", "128", "--resume") == 0  # nothing to do


def test_vds_overwrite_replaces_the_data_directory(tmp_path, reference):
    out = tmp_path / "o.h5"
    data = Path(str(out) + ".data")
    assert _generate(out, "--n", str(N), "--seed", "1", "--block-size", "128") == 0
    old_token = json.loads((data / "manifest.json").read_text())["token"]
    old_file = tmp_path / "old.h5"
    old_file.write_bytes(out.read_bytes())
    assert _generate(out, "--n", str(N), "--seed", "5", "--block-size", "128", "--overwrite") == 0
    assert contents(out) == contents(reference)
    assert json.loads((data / "manifest.json").read_text())["token"] != old_token
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.h5", "o.h5.data", "old.h5"]  # old blocks removed
    # a file whose data directory now holds another run's blocks (same names) is never read as complete
    with pytest.raises(ValueError, match="another run"):
        read_rods(old_file)
    old_file.unlink()
    # copy over a vds output removes its data directory (once the new file is complete)
    assert _generate(out, "--n", "10", "--overwrite", "--join", "copy") == 0
    assert not data.exists() and read_rods(out)[1].shape[0] == 10


def test_merge_of_vds_shards_is_a_copy(tmp_path, reference):
    shards = []
    for i in range(2):
        shard = tmp_path / f"s{i}.h5"
        assert _generate(shard, "--n", str(N), "--seed", "5", "--shard", f"{i}/2", "--block-size", "64") == 0
        shards.append(shard)
    merged = tmp_path / "merged.h5"
    assert main(["merge", *map(str, shards), "--out", str(merged)]) == 0
    assert contents(merged) == contents(reference)
    with h5py.File(merged) as f:
        assert not f["intensity"].is_virtual


def test_block_ranges_start_small_and_cover_the_range_once():
    """The first block holds min(block_size, FIRST_BLOCK) structures so the first data land early; the blocks
    tile [start, stop) in order, whatever the sizes."""
    import itertools

    from mamba_ctr.data.pipeline import FIRST_BLOCK, block_ranges

    assert block_ranges(0, 20_000, 8192)[:3] == [(0, FIRST_BLOCK), (FIRST_BLOCK, FIRST_BLOCK + 8192),
                                                 (FIRST_BLOCK + 8192, FIRST_BLOCK + 2 * 8192)]
    assert block_ranges(0, 600, 20)[:2] == [(0, 20), (20, 40)]  # blocks at most FIRST_BLOCK: unchanged
    assert block_ranges(5, 5, 100) == []
    for start, stop, size in [(0, 1, 8192), (3, 5000, 1500), (100, 20_000, 4096), (0, 1024, 1024)]:
        blocks = block_ranges(start, stop, size)
        assert blocks[0][0] == start and blocks[-1][1] == stop
        assert all(a[1] == b[0] for a, b in itertools.pairwise(blocks))
        assert all(0 < hi - lo <= size for lo, hi in blocks)
