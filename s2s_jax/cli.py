"""Command-line programs. Every ``Config`` field is a flag (``--model.hidden-size 256``),
generated from the dataclasses, so the CLI cannot fall behind the config.

Errors a user can cause end in one line, ``PROG: error: ...``, exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import typing
from collections.abc import Callable, Sequence
from typing import Any, Literal, NoReturn

from s2s_jax.config import Config
from s2s_jax.errors import UserError

# OSError: a path the user gave cannot be read or written.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (UserError, OSError)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _bool(text: str) -> bool:
    low = text.lower()
    if low in ("true", "1", "yes", "on"):
        return True
    if low in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _add_fields(parser: argparse.ArgumentParser, obj: Any, prefix: str) -> None:
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        hint, value = hints[f.name], getattr(obj, f.name)
        dotted = f"{prefix}{f.name}"
        flag = "--" + dotted.replace("_", "-")
        if dataclasses.is_dataclass(hint):
            _add_fields(parser, value, dotted + ".")
            continue
        kwargs: dict[str, Any] = {"dest": dotted, "default": argparse.SUPPRESS, "help": f"(default: {value!r})"}
        origin = typing.get_origin(hint)
        if origin is Literal:
            kwargs["choices"] = typing.get_args(hint)
        elif origin is tuple:
            kwargs.update(nargs="+", type=typing.get_args(hint)[0])
        elif hint is bool:
            kwargs.update(type=_bool, nargs="?", const=True, metavar="BOOL")
        else:
            kwargs["type"] = hint
        parser.add_argument(flag, **kwargs)


def _apply(cfg: Config, overrides: dict[str, Any]) -> Config:
    tree = cfg.to_dict()
    for dotted, value in overrides.items():
        node = tree
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = list(value) if isinstance(value, (list, tuple)) else value
    return Config.from_dict(tree)


def config_parser(prog: str, description: str, cfg: Config, base: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description=description, parents=[base], allow_abbrev=False,
                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for section in ("model", "data", "train", "decode"):
        group = parser.add_argument_group(section)
        _add_fields(group, getattr(cfg, section), section + ".")
    return parser


def parse_config(prog: str, description: str, argv: Sequence[str] | None,
                 add_args: Callable[[argparse.ArgumentParser], None]) -> tuple[argparse.Namespace, Config]:
    """Parse ``--preset NAME`` and the program's own flags, then every config field with the
    preset's values as defaults. Returns (namespace, config)."""
    from s2s_jax.presets import get_preset, list_presets

    argv = list(sys.argv[1:] if argv is None else argv)
    base = _Parser(add_help=False)
    base.add_argument("--preset", default="dates", help=f"one of: {', '.join(list_presets())} (default: dates)")
    add_args(base)
    known, _ = base.parse_known_args([a for a in argv if a not in ("-h", "--help")])
    cfg = get_preset(known.preset)
    parser = config_parser(prog, description, cfg, base)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.error(f"unknown option {unknown[0]} (see {prog} --help)")
    overrides = {k: v for k, v in vars(args).items() if "." in k}
    return args, _apply(cfg, overrides)


def _fail(prog: str, e: BaseException) -> NoReturn:
    print(f"{prog}: error: {e}", file=sys.stderr)
    sys.exit(2)


def _setup_logging(quiet: bool = False) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s", stream=sys.stderr)


def train_main(argv: Sequence[str] | None = None) -> None:
    """s2s-train --preset dates --workdir runs/dates [--section.field VALUE ...]"""
    prog = "s2s-train"

    def add(p: argparse.ArgumentParser) -> None:
        p.add_argument("--workdir", required=True, help="run directory; an existing run there is resumed")

    try:
        args, cfg = parse_config(prog, "Train a sequence-to-sequence model.", argv, add)
        _setup_logging(cfg.train.quiet)
        from s2s_jax.training.loop import run

        result = run(cfg, args.workdir)
    except EXPECTED_ERRORS as e:
        _fail(prog, e)
    step = int(result.state.step)
    if result.stopped == "signal":
        print(f"{prog}: interrupted; saved step {step} in {args.workdir}; run the same command to resume.")
    elif result.stopped == "time":
        print(f"{prog}: time budget reached; saved step {step} in {args.workdir}; run the same command to resume.")
    else:
        print(f"{prog}: finished at step {step}; results in {args.workdir}/metrics.jsonl")
