"""The commands of `mamba-ctr`, one module each: a `Config` dataclass that owns the defaults and help of its
options (field metadata), and `run(config)` that returns a result whose `summary()` the command line prints.

    >>> from mamba_ctr.workflows import evaluate
    >>> result = evaluate.run(evaluate.Config(model="paper-12L", data="test.h5", out="eval"))

Adding a command: write `workflows/<name>.py` and add the name to COMMANDS. Library code (physics, data, nn,
reconstruct, io, plots) never imports this package.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["COMMANDS", "load"]

COMMANDS = ("info", "simulate", "generate", "merge", "stats", "train", "evaluate", "predict", "fit", "demo", "study",
            "compare", "calibrate")


def load(command: str) -> ModuleType:
    """The workflow module of `command` (imported on demand: some need torch)."""
    if command not in COMMANDS:
        raise KeyError(f"unknown command {command!r} (known: {', '.join(COMMANDS)})")
    return importlib.import_module(f"{__name__}.{command}")
