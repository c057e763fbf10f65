"""The config flags of the command-line programs and their one-line errors."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from s2s_jax.cli import parse_config, train_main
from s2s_jax.config import field_metadata, get_field
from s2s_jax.presets import get_preset


def _noop(parser):
    parser.add_argument("--workdir")


def test_flags_override_preset_fields():
    args, cfg = parse_config("t", "", ["--preset", "copy", "--workdir", "w", "--model.hidden-size", "7",
                                       "--model.bidirectional", "--model.bridge", "linear",
                                       "--data.bucket-lengths", "8", "24", "--train.scheduled-sampling.schedule",
                                       "linear", "--train.quiet", "false"], _noop)
    assert args.workdir == "w"
    assert cfg.name == "copy" and cfg.model.hidden_size == 7 and cfg.model.bidirectional
    assert cfg.data.bucket_lengths == (8, 24)
    assert cfg.train.scheduled_sampling.schedule == "linear" and cfg.train.quiet is False


@pytest.mark.parametrize("argv, message", [
    (["--preset", "nope", "--workdir", "w"], "unknown preset 'nope'"),
    (["--workdir", "w", "--model.hiden-size", "3"], "unknown option --model.hiden-size"),
    (["--workdir", "w", "--model.cell", "lstmm"], "invalid choice: 'lstmm'"),
    (["--workdir", "w", "--model.hidden-size", "big"], "invalid int value: 'big'"),
    (["--workdir", "w", "--model.hidden-size", "0"], "model.hidden_size must be positive"),
])
def test_bad_flags_end_in_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("s2s-train: error:") and message in err


def leaf_fields(obj, prefix: str) -> list[str]:
    out = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        out += leaf_fields(value, f"{prefix}{f.name}.") if dataclasses.is_dataclass(value) else [prefix + f.name]
    return out


def test_help_explains_every_field_in_one_sentence_with_its_default():
    out = subprocess.run([sys.executable, "-m", "s2s_jax.cli", "--help"], capture_output=True, text=True,
                         check=True).stdout
    text = " ".join(out.split())  # argparse wraps the help
    cfg = get_preset("dates")
    for section in ("model", "data", "train", "decode"):
        for dotted in leaf_fields(getattr(cfg, section), section + "."):
            doc = field_metadata(dotted)["doc"]
            plain = doc.replace("et al. ", "").replace("sec. ", "")
            assert doc[0].isupper() and doc.endswith(".") and ". " not in plain, f"{dotted}: {doc!r}"
            assert f"--{dotted.replace('_', '-')} " in text, dotted
            assert f"{doc} (default: {get_field(cfg, dotted)!r})" in text, dotted
    assert "(default: 'gru')" in text  # the dates preset's cell
