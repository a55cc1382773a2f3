"""Join complete shard files (generate --shard i/K) into one file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ._common import Result, user_path

__all__ = ["Config", "run"]


@dataclass
class Config:
    out: Path = field(metadata={"help": "merged file FILE.h5"})
    shards: tuple[Path, ...] = field(default=(), metadata={"help": "shard files, in any order", "positional": True})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing output"})

    def __post_init__(self) -> None:
        self.shards, self.out = tuple(Path(p) for p in self.shards), Path(self.out)
        if not self.shards:
            raise InputError("give the shard files to merge")


def run(config: Config) -> Result:
    """Merge; `Result.value` is the output path."""
    from ..data.generate import merge

    with user_path(config.out, "merge into"):
        out = merge(config.shards, config.out, overwrite=config.overwrite)
    return Result(out, f"merged {len(config.shards)} shards into {out}")
