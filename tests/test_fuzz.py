"""Property-based fuzzing (issue 18 item 3): every reader, every subcommand's arguments and damaged HDF5 and
checkpoint files end in a correct result or a one-line InputError: never another exception (a traceback), never
a partial output.

Fast profile here (FUZZ_EXAMPLES per property, derandomized: the same cases on every run); the long profile is
benchmarks/test_fuzz_long.py (MAMBA_CTR_FUZZ_EXAMPLES set before this module is imported). `CASES` counts the
cases tried per property.
"""

from __future__ import annotations

import collections
import dataclasses
import gc
import json
import os
import shutil
import typing
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mamba_ctr.errors import InputError
from mamba_ctr.physics.grid import Grid

FUZZ_EXAMPLES = int(os.environ.get("MAMBA_CTR_FUZZ_EXAMPLES", "12"))
FUZZ = settings(max_examples=FUZZ_EXAMPLES, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much])
CASES: collections.Counter[str] = collections.Counter()


def outcome(name: str, call: typing.Callable[[], typing.Any]) -> typing.Any:
    """call() → its result, or None for a one-line InputError without numpy reprs; anything else fails."""
    CASES[name] += 1
    try:
        return call()
    except InputError as error:
        message = str(error)
        assert message and "\n" not in message.strip(), message
        assert "np.float" not in message and "np.int" not in message, message
        return None
    finally:
        gc.collect()  # objects of a damaged file are freed here, so that a crash in a destructor names its case


def fresh(tmp_path: Path) -> Path:
    """A new folder per case: a file is never rewritten in place while an earlier case may still map it (a
    truncated mmap'd file is a SIGBUS at the next access, here or in a destructor)."""
    folder = tmp_path / f"case{sum(CASES.values())}"
    folder.mkdir()
    return folder


def files_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# --- rods CSV (io.rods_input) ---------------------------------------------------------------------------------

TINY = Grid(h=[0, 1], k=[0, 0], L=[0.1, 0.2, 0.3])
TOKENS = ["0", "1", "-1", "2", "1.0", "1e0", "1.5", "0.9999999", "0.1", "0.2", "0.3", "0.30000001", "5", "nan",
          "inf", "-inf", "", " ", "x", "1e308", "-0", "0x1", "１", "2.5e-3", '"1"', "1,0"]
COLUMNS = ["h", "k", "L", "intensity", "structure", "extra"]


def valid_rows(n_structures: int) -> list[dict[str, str]]:
    return [{"structure": str(s), "h": str(h), "k": "0", "L": repr(L), "intensity": repr(1.0 + s + h + L)}
            for s in range(n_structures) for h in (0, 1) for L in (0.1, 0.2, 0.3)]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.write_text("\n".join(",".join(row) for row in [header, *rows]) + "\n", encoding="utf-8")


def check_rods(path: Path, result: np.ndarray | None) -> None:
    """A result must hold exactly the intensities of the file's rows, at their (structure, rod, L) places."""
    if result is None:
        return
    import csv

    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    structures = sorted({int(float(r.get("structure") or 0)) for r in rows})
    assert result.shape == (len(structures), 2, 3)
    for r in rows:
        s, rod = structures.index(int(float(r.get("structure") or 0))), int(float(r["h"]))
        point = int(np.argmin(np.abs(TINY.L - float(r["L"]))))
        np.testing.assert_equal(result[s, rod, point], float(r["intensity"]))


@FUZZ
@given(header=st.permutations(COLUMNS).flatmap(lambda c: st.integers(3, len(c)).map(lambda k: list(c[:k]))),
       cells=st.lists(st.lists(st.sampled_from(TOKENS), min_size=0, max_size=7), max_size=14))
def test_fuzz_rods_csv_random(tmp_path, header, cells):
    from mamba_ctr.io.rods_input import read_intensities

    path = tmp_path / "rods.csv"
    write_csv(path, header, cells)
    check_rods(path, outcome("rods_csv", lambda: read_intensities(path, TINY)))


@FUZZ
@given(n=st.integers(1, 2), edits=st.lists(st.tuples(st.integers(0, 11), st.sampled_from(COLUMNS[:5]),
                                                      st.sampled_from([*TOKENS, "DROP", "DUP"])), max_size=3))
def test_fuzz_rods_csv_edited(tmp_path, n, edits):
    from mamba_ctr.io.rods_input import read_intensities

    rows = valid_rows(n)
    for index, column, value in edits:
        i = index % len(rows)
        if value == "DROP":
            rows.pop(i)
        elif value == "DUP":
            rows.append(dict(rows[i]))
        else:
            rows[i][column] = value
        if not rows:
            break
    path = tmp_path / "rods.csv"
    write_csv(path, COLUMNS[:5], [[r.get(c, "") for c in COLUMNS[:5]] for r in rows])
    result = outcome("rods_csv", lambda: read_intensities(path, TINY))
    check_rods(path, result)
    if not edits:
        assert result is not None  # the unedited file is read


@FUZZ
@given(data=st.binary(max_size=300))
def test_fuzz_rods_csv_bytes(tmp_path, data):
    from mamba_ctr.io.rods_input import read_intensities

    path = tmp_path / "rods.csv"
    path.write_bytes(data)
    check_rods(path, outcome("rods_csv", lambda: read_intensities(path, TINY)))


# --- damaged HDF5 files: rods (io.rods_input), datasets (data.stats) -------------------------------------------

def damage(data: bytes, kind: str, where: float, amount: int, seed: int) -> bytes:
    """Truncated at `where`, `amount` bytes flipped from `where` on, or foreign bytes."""
    rng = np.random.default_rng(seed)
    at = int(where * len(data))
    if kind == "truncate":
        return data[:at]
    if kind == "flip":
        out = bytearray(data)
        for i in rng.integers(at, len(data), amount) if at < len(data) else []:
            out[i] ^= int(rng.integers(1, 256))
        return bytes(out)
    return rng.bytes(max(amount * 37, 1))


DAMAGE = dict(kind=st.sampled_from(["truncate", "flip", "foreign"]), where=st.floats(0, 1),
              amount=st.integers(1, 64), seed=st.integers(0, 2**16))


@pytest.fixture(scope="module")
def rods_h5(tmp_path_factory):
    from mamba_ctr.data.hdf5 import write_rods
    from mamba_ctr.physics import presets
    from mamba_ctr.simulate import simulate

    preset = presets.get("paper-4L")
    path = tmp_path_factory.mktemp("rods") / "rods.h5"
    write_rods(path, simulate(preset.nominal(), preset.grid), preset=preset.to_dict())
    return preset.grid, path.read_bytes()


@FUZZ
@given(**DAMAGE)
def test_fuzz_rods_hdf5_damaged(tmp_path, rods_h5, kind, where, amount, seed):
    from mamba_ctr.io.rods_input import read_intensities

    grid, data = rods_h5
    path = fresh(tmp_path) / "rods.h5"
    path.write_bytes(damage(data, kind, where, amount, seed))
    result = outcome("rods_hdf5", lambda: read_intensities(path, grid))
    assert result is None or result.shape == (1, *grid.shape)


@pytest.fixture(scope="module")
def dataset_h5(tmp_path_factory):
    from mamba_ctr.data.generate import generate
    from mamba_ctr.data.generate_config import GenerateConfig

    path = generate(GenerateConfig(out=tmp_path_factory.mktemp("data") / "d.h5", preset="paper-4L", n=3,
                                   join="copy", quiet=True))
    return path.read_bytes()


@FUZZ
@given(**DAMAGE)
def test_fuzz_dataset_stats_damaged(tmp_path, dataset_h5, kind, where, amount, seed):
    from mamba_ctr.data.stats import file_stats

    path = fresh(tmp_path) / "d.h5"
    path.write_bytes(damage(dataset_h5, kind, where, amount, seed))
    stats = outcome("dataset_hdf5", lambda: file_stats(path, recompute=True))
    if stats is not None:  # never NaN means (issue 18)
        summary = stats.summary()
        assert np.isfinite(summary["X_mean"]) and np.all(np.isfinite(summary["U_re_mean"]))


# --- checkpoints (nn.checkpoint via models.load) ------------------------------------------------------------------

@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    pytest.importorskip("torch")
    from mamba_ctr import models

    folder = tmp_path_factory.mktemp("model")
    for suffix in (".json", ".pt"):
        shutil.copy(Path(models.__file__).parent / f"paper-12L{suffix}", folder / f"m{suffix}")
    return {suffix: (folder / f"m{suffix}").read_bytes() for suffix in (".json", ".pt")}


@FUZZ
@given(part=st.sampled_from([".json", ".pt"]), **DAMAGE)
def test_fuzz_checkpoint_damaged(tmp_path, shipped, part, kind, where, amount, seed):
    from mamba_ctr import models

    folder = fresh(tmp_path)
    for suffix, data in shipped.items():
        (folder / f"m{suffix}").write_bytes(damage(data, kind, where, amount, seed) if suffix == part else data)
    checkpoint = outcome("checkpoint", lambda: models.load(folder / "m"))
    assert checkpoint is None or checkpoint.grid.shape == (16, 240)


# --- structure files (io.structure_file), preset families (physics.presets.resolve) ----------------------------

JSON_VALUES = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers(-10**20, 10**20)
                           | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=14) | st.dictionaries(st.text(max_size=8), inner,
                                                                                         max_size=4), max_leaves=30)
LAYER_KEYS = ["c", "z_B", "z_Oap", "z_Ox", "z_Oy", "sr_fraction", "occupancy"]


@FUZZ
@given(spec=st.fixed_dictionaries({}, optional={
    "preset": st.sampled_from(["paper-12L", "4L", "paper12L", "", "paper-4L"]) | JSON_VALUES,
    "beta": st.floats(allow_nan=True) | JSON_VALUES,
    "layers": st.dictionaries(st.sampled_from([*LAYER_KEYS, "bogus"]),
                              st.lists(st.floats(-2, 8) | st.just(float("nan")), min_size=4, max_size=13)
                              | JSON_VALUES, max_size=4) | JSON_VALUES,
    "other": JSON_VALUES}), as_toml=st.booleans())
def test_fuzz_structure_file(tmp_path, spec, as_toml):
    from mamba_ctr.io.structure_file import load_structure

    path = tmp_path / ("s.toml" if as_toml else "s.json")
    if as_toml:
        path.write_text(_toml(spec), encoding="utf-8")
    else:
        path.write_text(json.dumps(spec), encoding="utf-8")
    result = outcome("structure_file", lambda: load_structure(path))
    if result is not None:
        preset, structures = result
        from mamba_ctr.simulate import simulate

        assert np.all(np.isfinite(simulate(structures, preset.grid).intensity))


def _toml(spec: dict) -> str:
    """A rough TOML writer (strings, numbers, lists, one level of tables); odd values make odd TOML, as users do."""
    lines, tables = [], []
    for key, value in spec.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{json.dumps(str(key))} = {_toml_value(value)}")
    for key, table in tables:
        lines.append(f"[{json.dumps(str(key))}]")
        lines += [f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in table.items() if not isinstance(v, dict)]
    return "\n".join(lines) + "\n"


def _toml_value(value: typing.Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if value != value else ("inf" if value == float("inf") else
                                             "-inf" if value == float("-inf") else repr(value))
    if isinstance(value, (int, str)):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value if v is not None and not isinstance(v, dict)) + "]"
    return '""'


PRESET_KEYS = ["base", "name", "description", "film_layers", "occupancy_range", "n_substrate", "rough", "bogus"]


@FUZZ
@given(spec=st.dictionaries(st.sampled_from(PRESET_KEYS),
                            st.sampled_from(["paper-12L", "4L", "x"]) | st.lists(st.integers(-3, 40), max_size=3)
                            | st.lists(st.floats(-1, 2), max_size=3) | st.integers(-5, 50) | st.booleans()
                            | st.floats(allow_nan=True) | st.text(max_size=5), max_size=5))
def test_fuzz_preset_file(tmp_path, spec):
    from mamba_ctr.physics.presets import resolve
    from mamba_ctr.simulate import simulate

    path = tmp_path / "family.toml"
    path.write_text(_toml(spec), encoding="utf-8")
    preset = outcome("preset_file", lambda: resolve(path))
    if preset is not None:  # a preset that resolves can be sampled and simulated
        rods = simulate(preset.sample(2, seed=0), preset.grid)
        assert np.all(np.isfinite(rods.intensity))


# --- measured-data readers (io.ctr_formats, io.structure_formats) -----------------------------------------------

NUMBERS = st.sampled_from(["0", "1", "-1", "0.5", "1/2", "2", "0.1", "1e3", "nan", "inf", "-3.5", "x", "Sr", "O2-",
                           "Mn3+", "#", "!", ";", "_cell_length_a", "loop_", "_atom_site_fract_x", "1e400", "3"])
LINES = st.lists(st.lists(NUMBERS, min_size=0, max_size=9).map(" ".join), max_size=12).map("\n".join)


@FUZZ
@given(text=LINES | st.text(max_size=200), format=st.sampled_from(["rod", "genx", "gsecars", "ana", "plain"]),
       columns=st.sampled_from([None, "h,k,l,I", "h,k,l,I,sigma", "h,k,l,F,skip", "bogus"]))
def test_fuzz_ctr_formats(tmp_path, text, format, columns):
    from mamba_ctr.io.ctr_formats import read_rods

    path = tmp_path / "rods.dat"
    path.write_text(text, encoding="utf-8")
    outcome("ctr_formats", lambda: read_rods(path, format, columns=columns if format == "plain" else None))


@FUZZ
@given(text=LINES | st.text(max_size=200), suffix=st.sampled_from([".xyz", ".bul", ".sur", ".fit", ".cif", ".txt"]))
def test_fuzz_structure_formats(tmp_path, text, suffix):
    from mamba_ctr.io.structure_formats import read_structure

    path = tmp_path / f"structure{suffix}"
    path.write_text(text, encoding="utf-8")
    outcome("structure_formats", lambda: read_structure(path, cell=(3.9, 3.9, 3.9) if suffix == ".xyz" else None))


# --- every subcommand's arguments through mamba_ctr.cli.main ---------------------------------------------------

def _commands() -> list[str]:
    from mamba_ctr import workflows

    return list(workflows.COMMANDS)


def _value(hint: typing.Any, name: str) -> st.SearchStrategy[str]:
    """Command-line text for a field of type `hint`: mostly plausible, sometimes hostile."""
    hostile = st.sampled_from(["", "nan", "-1", "0", "1e999", "x", "１", "a,b", "K=V", ".", "/dev/null/x",
                               "file.toml/x", "12L", "paper12L", "1/2", "3/2"])
    origin = typing.get_origin(hint)
    if hint is int:
        plausible = st.integers(-3, 6).map(str)
    elif hint is float:
        plausible = st.sampled_from(["0.001", "0.5", "1", "-0.5", "inf"])
    elif origin is tuple:
        plausible = st.lists(st.sampled_from(["paper-4L", "4L", "cobra", "lsq", "1", "2", "0.9"]), max_size=3).map(
            ",".join)
    elif origin is dict:
        plausible = st.sampled_from(["4L=paper-12L", "paper-4L=missing", "=", "a=b,c"])
    else:
        plausible = st.sampled_from(["paper-4L", "4L", "out", "missing.h5", "file.toml", "data.h5", "x.csv",
                                     "auto", "float32", "numpy"])
    return st.one_of(plausible, hostile)


@pytest.mark.parametrize("command", _commands())
def test_fuzz_cli_arguments(tmp_path, monkeypatch, capsys, command):
    """Random argv from the command's Config fields; `run` replaced (no work is done): exit 0 or exit 2 with one
    line and nothing written; never a traceback."""
    from mamba_ctr import cli, workflows
    from mamba_ctr.workflows._common import Result

    module = workflows.load(command)
    fields = cli._fields(module.Config)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file.toml").write_text("")
    (tmp_path / "data.h5").write_bytes(b"not hdf5")
    monkeypatch.setattr(module, "run", lambda config: Result(config, ""))
    before = files_in(tmp_path)

    def flag(f: dataclasses.Field, hint: typing.Any) -> st.SearchStrategy[list[str]]:
        if hint is bool:
            return st.sampled_from([[f"--{f.name.replace('_', '-')}"], [f"--no-{f.name.replace('_', '-')}"]])
        if f.metadata.get("positional"):
            return _value(hint, f.name).map(lambda v: [v] if v and not v.startswith("-") else ["x"])
        return _value(hint, f.name).map(lambda v: [f"--{f.name.replace('_', '-')}={v}"])

    @FUZZ
    @given(chosen=st.lists(st.sampled_from(range(len(fields))), unique=True, max_size=5).flatmap(
        lambda idx: st.tuples(*[flag(*fields[i]) for i in idx])))
    def check(chosen):
        CASES["cli"] += 1
        argv = [command] + [a for group in chosen for a in group]
        code = cli.main(argv)
        err = capsys.readouterr().err
        assert code in (0, 2), (argv, err)
        assert "Traceback" not in err, (argv, err)
        if code == 2:
            assert err.count("\n") == 1 and err.startswith(f"mamba-ctr {command}: error:"), (argv, err)
            assert "np.float" not in err and "np.int" not in err, err
            assert files_in(tmp_path) == before, argv  # bad input writes nothing

    check()
