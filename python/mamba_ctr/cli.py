"""The `mamba-ctr` command: a dispatcher over `mamba_ctr.workflows` (one module per command).

Each command's options are made from the fields of its workflow's `Config` (help and default from the field),
every command takes `--config FILE.toml` (keys = field names; flags override the file) and `--quiet`. One error
boundary: bad input (InputError) → one line on stderr, exit 2; Ctrl-C → exit 130; anything else is a bug → its
traceback, exit 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import traceback
import types
import typing
from pathlib import Path
from typing import Any

from . import workflows
from ._files import read_toml
from ._version import __version__
from .errors import InputError

EXIT_BUG, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 1, 2, 130
EXTRAS = {"torch": "train", "matplotlib": "plot", "dask": "dask", "distributed": "dask"}  # optional → extra


def _fields(config_class: type) -> list[tuple[dataclasses.Field, Any]]:
    """(field, its type without None) of every init field of a Config dataclass."""
    hints = typing.get_type_hints(config_class)
    fields = []
    for f in dataclasses.fields(config_class):
        hint = hints[f.name]
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        if f.init and (typing.get_origin(hint) is not dict or typing.get_args(hint)[1] is str):
            fields.append((f, hint))  # dict[str, Any] (e.g. arch_kwargs) is for TOML and Python only
    return fields


def _default(f: dataclasses.Field) -> Any:
    return f.default if f.default_factory is dataclasses.MISSING else f.default_factory()


def _parser(command: str, module: types.ModuleType) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"mamba-ctr {command}", description=(module.__doc__ or "").split("\n\n")[0])
    parser.add_argument("--config", type=Path, metavar="FILE.toml", default=argparse.SUPPRESS,
                        help="TOML file of these options, keys = field names (block_size = 4096); flags override it")
    fields = _fields(module.Config)
    for f, hint in fields:
        default = _default(f)
        text = ",".join(map(str, default)) if isinstance(default, tuple) else str(default)  # as typed
        shown = "" if default in (dataclasses.MISSING, None, {}, (), "") else f" (default: {text})"
        choices = f.metadata.get("choices")  # shown here, checked by the Config (one line, also for --config)
        kwargs: dict[str, Any] = {"help": (f.metadata.get("help", "") + shown).replace("%", "%%"),
                                  "default": argparse.SUPPRESS}
        if hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["metavar"] = "{" + ",".join(choices) + "}" if choices else f.name.upper()
        if f.metadata.get("positional"):  # optional here: it may come from --config (or --name, the older form)
            parser.add_argument(f.name, nargs="*" if typing.get_origin(hint) is tuple else "?", **kwargs)
            parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, default=argparse.SUPPRESS,
                                help=argparse.SUPPRESS)
        else:
            parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, **kwargs)
    if "quiet" not in {f.name for f, _ in fields}:
        parser.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars")
    return parser


def _convert(f: dataclasses.Field, hint: Any, given: Any) -> Any:
    """A command-line string (a list of them for a positional tuple) as the field's type."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    try:
        if isinstance(given, bool) or hint is str:
            return given
        if "type" in f.metadata:
            return f.metadata["type"](given)
        if origin is tuple:
            items = given if isinstance(given, list) else [v for v in given.split(",") if v.strip()]
            return tuple(args[0](v.strip()) for v in items)
        if origin is dict:  # "K=V,K=V"
            return {k.strip(): v.strip() for k, v in (item.split("=", 1) for item in given.split(",") if item.strip())}
        return hint(given)
    except ValueError as error:
        kind = "KEY=VALUE[,KEY=VALUE...]" if origin is dict else getattr(hint, "__name__", str(hint))
        raise InputError(f"{f.name} must be {kind}, got {given!r} ({error})") from None


def _config(command: str, module: types.ModuleType, args: argparse.Namespace) -> Any:
    """The Config of the TOML file (if any) with the given flags on top; its checks raise InputError."""
    given = vars(args)
    values = read_toml(given["config"]) if "config" in given else {}
    fields = _fields(module.Config)
    known = [f.name for f in dataclasses.fields(module.Config) if f.init]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise InputError(f"{given['config']}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(known)}")
    values.update({f.name: _convert(f, hint, given[f.name]) for f, hint in fields if f.name in given})
    if given.get("quiet") and "progress" in known:
        values["progress"] = False
    missing = [f.name.upper() if f.metadata.get("positional") else f"--{f.name.replace('_', '-')}"
               for f, _ in fields if f.name not in values and _default(f) is dataclasses.MISSING]
    if missing:
        raise InputError(f"{command} needs {', '.join(missing)} (or give it in --config FILE.toml)")
    try:
        return module.Config(**values)
    except (TypeError, ValueError) as error:  # a Config's checks of the values it was given: bad input
        raise InputError(str(error)) from None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(
        prog="mamba-ctr", description="Crystal truncation rods of epitaxial films: simulate, learn, reconstruct.")
    parser.add_argument("--version", action="version", version=f"mamba-ctr {__version__}")
    parser.add_argument("command", choices=workflows.COMMANDS, help="subcommand (mamba-ctr COMMAND --help)")
    if not argv or argv[0] not in workflows.COMMANDS:
        parser.parse_args(argv[:1] or ["--help"])  # help, version, or the choices and exit 2
    command = argv[0]
    try:
        try:
            module = workflows.load(command)
            result = module.run(_config(command, module, _parser(command, module).parse_args(argv[1:])))
        except ModuleNotFoundError as error:  # an optional extra is an installation matter, not a bug
            if error.name not in EXTRAS:
                raise
            raise InputError(f'needs {error.name}: pip install "mamba-ctr[{EXTRAS[error.name]}]"') from None
        if result.summary():
            print(result.summary())
        return 0
    except InputError as error:
        print(f"mamba-ctr {command}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"mamba-ctr {command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:  # a bug: the traceback is what a report needs
        traceback.print_exc()
        return EXIT_BUG


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
