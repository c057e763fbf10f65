"""Command-line programs. Every ``Config`` field is a flag (``--model.hidden-size 256``),
generated from the dataclasses with the field's documentation as its help, so the CLI cannot
fall behind the config.

Errors a user can cause end in one line, ``PROG: error: ...``, exit status 2.

The training loop and the plots are imported by their own commands: with them (TensorBoard's
writer, and PyTorch with it where installed; matplotlib) every program took seconds longer to
start, ``s2s-translate`` and ``s2s-eval`` included (BENCHMARKS.md, "Programs that start without
the training loop").
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import stat
import sys
import threading
import typing
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal, NoReturn

from s2s_jax.config import Config
from s2s_jax.data.text_files import decode_lines
from s2s_jax.errors import UserError
from s2s_jax.evaluation import evaluate_workdir
from s2s_jax.fileio import atomic_open
from s2s_jax.presets import get_preset, list_presets
from s2s_jax.progress import progress
from s2s_jax.translator import Translator

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
        # %% escapes argparse's formatting in the docs and defaults.
        doc = f"{f.metadata['doc']} (default: {value!r})".replace("%", "%%")
        kwargs: dict[str, Any] = {"dest": dotted, "default": argparse.SUPPRESS, "help": doc}
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
                 add_args: Callable[[argparse.ArgumentParser], None],
                 default_preset: str = "dates") -> tuple[argparse.Namespace, Config]:
    """Parse ``--preset NAME`` and the program's own flags, then every config field with the
    preset's values as defaults. Returns (namespace, config)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    base = _Parser(add_help=False)
    base.add_argument("--preset", default=default_preset,
                      help=f"one of: {', '.join(list_presets())} (default: {default_preset})")
    preset_only = _Parser(add_help=False)
    preset_only.add_argument("--preset", default=default_preset)
    cfg = get_preset(preset_only.parse_known_args(argv)[0].preset)
    add_args(base)
    parser = config_parser(prog, description, cfg, base)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.error(f"unknown option {unknown[0]} (see {prog} --help)")
    overrides = {k: v for k, v in vars(args).items() if "." in k}
    return args, _apply(cfg, overrides)


def _fail(prog: str, e: BaseException) -> NoReturn:
    print(f"{prog}: error: {e}", file=sys.stderr)
    sys.exit(2)


def _setup_logging(quiet: bool = False, program: bool = False) -> None:
    # force: absl (imported by Orbax) already configured the root logger, at WARNING, which would
    # hide our INFO lines; the libraries' own INFO records (Orbax's save details, JAX's backend
    # probing) stay hidden.
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s", stream=sys.stderr,
                        force=True)
    logging.getLogger("jax").setLevel(logging.WARNING)
    # A failed write makes Orbax's and TensorStore's background threads log, and print, hundreds
    # of lines of tracebacks; the operation that failed reports it in one sentence instead. (A
    # program, not a caller of train_main(argv) such as a test, owns the process-wide hooks.)
    for name in ("absl", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    if program:
        threading.excepthook = _log_background_error
        sys.unraisablehook = _log_background_error
        # Orbax abandons a failed asynchronous save's coroutines, and Python warns of each at exit.
        warnings.filterwarnings("ignore", message=r"coroutine .* was never awaited", category=RuntimeWarning)


def _log_background_error(args: Any) -> None:
    logging.getLogger("s2s_jax").debug("a background thread failed: %s", getattr(args, "exc_value", args))


def train_main(argv: Sequence[str] | None = None) -> None:
    """s2s-train --preset dates --workdir runs/dates [--section.field VALUE ...]"""
    prog = "s2s-train"

    def add(p: argparse.ArgumentParser) -> None:
        p.add_argument("--workdir", required=True, help="run directory; an existing run there is resumed")

    from s2s_jax.loop import run

    try:
        args, cfg = parse_config(prog, "Train a sequence-to-sequence model.", argv, add)
        _setup_logging(cfg.train.quiet, program=argv is None)
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


def _checkpoint(text: str) -> str | int:
    if text in ("best", "latest"):
        return text
    if text.isdigit():
        return int(text)
    raise argparse.ArgumentTypeError(f"expected best, latest or a step number, got {text!r}")


def eval_main(argv: Sequence[str] | None = None) -> None:
    """s2s-eval --workdir W --split test [--beam-size 5] [--checkpoint best|latest|STEP] [--output FILE]"""
    prog = "s2s-eval"
    parser = _Parser(prog=prog, description="Translate a split with a trained run and score it with sacreBLEU "
                     "(BLEU and chrF, cased, 13a tokenisation, against the raw references).")
    parser.add_argument("--workdir", required=True, help="the training run's directory")
    parser.add_argument("--split", default="test", help="train, validation, test, or a name in the run's data.splits")
    parser.add_argument("--checkpoint", type=_checkpoint, default="best", help="best, latest or a step number")
    parser.add_argument("--beam-size", type=int, default=0,
                        help="1: greedy; more: beam search of this width; 0: the run's decode settings")
    parser.add_argument("--output", default=None,
                        help="hypotheses file (default WORKDIR/eval/SPLIT-stepN-DECODING.txt); "
                             "the scores are written beside it as .scores.json")
    args = parser.parse_args(argv)
    if args.beam_size < 0:
        parser.error(f"--beam-size must be >= 0, got {args.beam_size}")
    _setup_logging(program=argv is None)
    try:
        with progress(0, args.split, unit="sentence", leave=False) as bar:
            report = evaluate_workdir(args.workdir, args.split, args.checkpoint, args.beam_size or None, args.output,
                                      progress=bar.update)
    except EXPECTED_ERRORS as e:
        _fail(prog, e)
    print(f"{prog}: {report['split_name']} ({report['examples']} sentences), step {report['step']}: "
          f"BLEU {report['bleu']:.2f} chrF {report['chrf']:.2f} ({report['bleu_signature']}); "
          f"hypotheses in {report['hypotheses']}, scores in {report['scores']}")


def plot_main(argv: Sequence[str] | None = None) -> None:
    """s2s-plot --workdir W [--out DIR] [--split validation|test] [--examples 4] [--checkpoint best|latest|STEP]"""
    prog = "s2s-plot"
    parser = _Parser(prog=prog, description="Plot a run's training curves (from metrics.jsonl) and the attention "
                     "of a few sentences as PNG files.")
    parser.add_argument("--workdir", required=True, help="the training run's directory")
    parser.add_argument("--out", default=None, help="directory of the PNGs (default: WORKDIR/plots)")
    parser.add_argument("--split", default="validation", choices=("train", "validation", "test"),
                        help="the split whose first sentences are decoded")
    parser.add_argument("--examples", type=int, default=4, help="number of attention heatmaps")
    parser.add_argument("--checkpoint", type=_checkpoint, default="best", help="best, latest or a step number")
    args = parser.parse_args(argv)
    if args.examples < 0:
        parser.error(f"--examples must be >= 0, got {args.examples}")
    _setup_logging(program=argv is None)
    from s2s_jax.plots import plot_run

    try:
        paths = plot_run(args.workdir, args.out, args.split, args.examples, args.checkpoint)
    except EXPECTED_ERRORS as e:
        _fail(prog, e)
    print("\n".join(paths))


TRANSLATE_CHUNK = 10000  # lines of a file decoded (sorted by length) together


def _is_interactive(stream: typing.BinaryIO) -> bool:
    """A terminal or a pipe, whose lines are translated as they arrive; a regular file is batched."""
    try:
        return not stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):  # no file descriptor (e.g. io.StringIO)
        return False


def translate_main(argv: Sequence[str] | None = None) -> None:
    """s2s-translate --workdir W [--checkpoint best] [--beam-size 5] [--n-best K] [-i in.txt] [-o out.txt]"""
    prog = "s2s-translate"
    parser = _Parser(prog=prog, description="Translate text, one sentence per line, with a trained run. Lines from "
                     "a terminal or a pipe are translated as they arrive; a file is translated in length-sorted "
                     "batches with a progress bar on standard error. Output lines follow the input's order.")
    parser.add_argument("--workdir", required=True, help="the training run's directory")
    parser.add_argument("--checkpoint", type=_checkpoint, default="best", help="best, latest or a step number")
    parser.add_argument("--beam-size", type=int, default=0,
                        help="1: greedy; more: beam search of this width; 0: the run's decode settings")
    parser.add_argument("--n-best", type=int, default=0,
                        help="print the K best hypotheses of each line as 'score<TAB>text' lines (K per input)")
    parser.add_argument("--length-penalty", type=float, default=None, help="GNMT alpha (default: the run's)")
    parser.add_argument("--max-len", type=int, default=None,
                        help="most output tokens, EOS included (default: the run's decode.max_len_b)")
    parser.add_argument("--batch-size", type=int, default=0,
                        help="sentences decoded together (default: the run's data.eval_batch_size)")
    parser.add_argument("-i", "--input", default="-", help="input file (default: standard input)")
    parser.add_argument("-o", "--output", default="-",
                        help="output file, written whole or not at all (default: standard output)")
    args = parser.parse_args(argv)
    for flag, value in (("--beam-size", args.beam_size), ("--n-best", args.n_best), ("--batch-size", args.batch_size)):
        if value < 0:
            parser.error(f"{flag} must be >= 0, got {value}")
    # Standard output carries the translations; warnings go to standard error.
    _setup_logging(quiet=True, program=argv is None)
    options = {"length_penalty": args.length_penalty, "max_len_b": args.max_len}
    decoding = dict(beam_size=args.beam_size or None, n_best=max(args.n_best, 1),
                    **{k: v for k, v in options.items() if v is not None})

    def lines(sentences: list[str], bar: Callable[[int], None] | None = None) -> list[str]:
        """Output lines of ``sentences``: one translation each, or ``n_best`` 'score<TAB>text' lines."""
        if not args.n_best:
            texts = translator.translate(sentences, batch_size=args.batch_size or None, progress=bar, **decoding)
            return [t + "\n" for t in texts]
        hyps = translator.hypotheses(sentences, batch_size=args.batch_size or None, progress=bar, **decoding)
        return [f"{h.score:.4f}\t{h.text}\n" for hs in hyps for h in hs]

    try:
        translator = Translator.from_workdir(args.workdir, args.checkpoint)
        translator.decode_config(**decoding)  # refuse bad flags before reading any input
        name = "standard input" if args.input == "-" else args.input
        with contextlib.ExitStack() as stack:
            src = sys.stdin.buffer if args.input == "-" else stack.enter_context(open(args.input, "rb"))
            out = sys.stdout if args.output == "-" else stack.enter_context(atomic_open(args.output))
            if args.output == "-":
                sys.stdout.reconfigure(encoding="utf-8")
            if _is_interactive(src):
                for number, raw in enumerate(iter(src.readline, b""), 1):
                    out.writelines(lines(decode_lines(raw, name, first_line=number)))
                    out.flush()
            else:  # decoded whole before anything is translated: a bad line leaves no output
                text = decode_lines(src.read(), name)
                with progress(len(text), "translate", unit="sentence") as bar:
                    for start in range(0, len(text), TRANSLATE_CHUNK):
                        out.writelines(lines(text[start:start + TRANSLATE_CHUNK], bar.update))
    except EXPECTED_ERRORS as e:
        _fail(prog, e)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    train_main()
