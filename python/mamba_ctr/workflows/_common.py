"""What the workflows share: the result type, the one OSError → InputError rule, output-folder checks and the
constants of the test sets and result tables."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError

TEST_SEED = 20261125  # the test sets of evaluate, study, compare and demo: a seed never used for training
GROUPS = ("c", "B", "O_ap", "O_eq", "p", "occupancy")  # atom types of the R² tables, in the paper's order
THICKNESS = ("paper-4L", "paper-12L", "paper-16L", "paper-24L", "paper-11-13L-rough")


@dataclass
class Result:
    """What a command's `run` returns: its data (`value`: a path, a report, table rows) and the text the
    command line prints (`summary()`)."""

    value: Any
    text: str = ""

    def summary(self) -> str:
        return self.text


@contextlib.contextmanager
def user_path(path: str | os.PathLike, verb: str = "write") -> Iterator[None]:
    """An OSError inside (a missing folder, permissions, a full disk, a folder where a file must go) is bad
    input naming `path`: InputError. Errors raised with a message of their own keep it."""
    try:
        yield
    except OSError as error:
        message = str(error) if error.errno is None else f"cannot {verb} {path} ({error})"
        raise InputError(message) from None


def output_dir(out: str | os.PathLike) -> Path:
    """`out` as a Path; InputError when a file is in the way of this output folder."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"out must be a directory, got the file {out}")
    return out


def preset_name(name: str) -> str:
    """The canonical name of a built-in preset (aliases such as 12L or rough allowed); InputError if unknown."""
    from ..physics import presets

    return presets.get(name).name


def progress(quiet: bool) -> bool | None:
    """The `progress` argument of the library for a command's `quiet`: off, or tqdm's own rule (a bar only
    when stderr is a terminal)."""
    return False if quiet else None


def r2_cells(row: dict[str, Any], groups: Sequence[str] = GROUPS) -> str:
    """The `R2_<group>` entries of a table row as Markdown cells ("–" where there is none)."""
    return " | ".join("–" if not math.isfinite(row[f"R2_{g}"]) else f"{row[f'R2_{g}']:.3f}" for g in groups)


def command_line(command: str, config: Any, positional: str, keep: Sequence[str] = ()) -> str:
    """The `mamba-ctr` command line that reproduces `config` (a command's Config dataclass): the positional field
    first, then every option whose value differs from its default (and those in `keep`), as the CLI spells them
    (bools --x/--no-x, tuples comma-joined, dicts K=V, floats %g)."""
    import dataclasses

    parts = [f"mamba-ctr {command}", str(getattr(config, positional))]
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        if f.name == positional or (value == default and f.name not in keep):
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + f.name.replace("_", "-"))
        elif isinstance(value, tuple):
            parts.append(f"{flag} {','.join(value)}")
        elif isinstance(value, dict):
            parts.append(f"{flag} {','.join(f'{k}={v}' for k, v in value.items())}")
        elif isinstance(value, float):
            parts.append(f"{flag} {value:g}")
        else:
            parts.append(f"{flag} {value}")
    return " ".join(parts)
