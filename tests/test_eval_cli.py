"""s2s-eval end to end on a tiny trained copy run: the hypotheses file holds the decodes of
the split in input order (against decoding every sentence in one plain batch), the scores
JSON matches sacrebleu on them, and user errors end in one line without writing anything."""

from __future__ import annotations

import functools
import json
import os

import numpy as np
import pytest

from s2s_jax.checkpoint import Checkpointer, restore
from s2s_jax.cli import eval_main
from s2s_jax.config import DecodeConfig
from s2s_jax.data.synthetic import generate
from s2s_jax.decoding import decode
from s2s_jax.evaluation import corpus_scores
from s2s_jax.loop import train
from s2s_jax.presets import get_preset
from s2s_jax.vocab import EOS_ID, PAD_ID

pytestmark = pytest.mark.xdist_group("eval_run")  # one worker trains the run for all

SIZES = (64, 16, 24)


@pytest.fixture(scope="session")  # module scope is rebuilt when xdist interleaves other modules
def workdir(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("copy_run"))
    cfg = get_preset("copy").replace(
        model={"embed_dim": 8, "hidden_size": 16},
        data={"synthetic_sizes": SIZES, "bucket_lengths": (16,), "batch_size": 16, "eval_batch_size": 32},
        train={"num_steps": 4, "eval_every": 2, "checkpoint_every": 2, "log_every": 2, "quiet": True},
        decode={"max_len_b": 14})
    train(cfg, workdir)
    return workdir


restored = functools.lru_cache(restore)


def reference_hypotheses(workdir, checkpoint, decode_cfg):
    """Every test sentence, in order, in one batch padded to 16, decoded and detokenised."""
    _, state, src_tok, tgt_tok = restored(workdir, checkpoint)
    test = generate("copy", SIZES, 0)[2]
    src = np.full((len(test), 16), PAD_ID, np.int32)
    for row, (s, _) in enumerate(test):
        ids = [*src_tok.encode(s), EOS_ID]  # the copy preset's sources end with EOS
        src[row, :len(ids)] = ids
    tokens = np.asarray(decode(state.model, state.params, src, decode_cfg))
    return [tgt_tok.decode(row) for row in tokens], [t for _, t in test], int(state.step)


def read_run(output):
    with open(output, encoding="utf-8") as f:
        lines = f.read().split("\n")
    assert lines[-1] == ""
    with open(os.path.splitext(output)[0] + ".scores.json", encoding="utf-8") as f:
        return lines[:-1], json.load(f)


@pytest.mark.parametrize(("checkpoint", "beam_size", "explicit_output"), [("best", 0, False), ("latest", 3, True)])
def test_eval_writes_hypotheses_in_order_and_scores(workdir, tmp_path, checkpoint, beam_size, explicit_output,
                                                    capsys):
    ckpt = Checkpointer(workdir, async_save=False)
    step = ckpt.step_of(checkpoint)
    ckpt.close()
    args = ["--workdir", workdir, "--split", "test", "--checkpoint", checkpoint, "--beam-size", str(beam_size)]
    if explicit_output:
        output = str(tmp_path / "hyps.txt")
        args += ["--output", output]
    else:
        output = os.path.join(workdir, "eval", f"test-step{step}-greedy.txt")
    eval_main(args)
    lines, report = read_run(output)
    expected = DecodeConfig(max_len_b=14, **({"strategy": "beam", "beam_size": 3, "n_best": 1} if beam_size else {}))
    assert DecodeConfig(**report["decode"]) == expected
    hyps, refs, restored_step = reference_hypotheses(workdir, checkpoint, expected)
    assert lines == hyps
    scores = corpus_scores(hyps, refs)
    assert {k: report[k] for k in scores} == scores
    assert report["examples"] == SIZES[2] and report["step"] == restored_step == step
    assert report["split"] == report["split_name"] == "test" and report["checkpoint"] == checkpoint
    assert report["hypotheses"] == output and np.isfinite(report["loss"])
    assert f"BLEU {scores['bleu']:.2f}" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "message"), [
    (["--split", "dev"], "split 'dev' is none of train, validation, test"),
    (["--checkpoint", "99"], "no checkpoint 99 in"),
    (["--checkpoint", "newest"], "expected best, latest or a step number"),
    (["--beam-size", "-2"], "--beam-size must be >= 0"),
])
def test_user_errors_end_in_one_line_and_write_nothing(workdir, tmp_path, args, message, capsys):
    output = str(tmp_path / "hyps.txt")
    with pytest.raises(SystemExit) as exit_info:
        eval_main(["--workdir", workdir, "--output", output, *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("s2s-eval: error:") and message in err
    assert not os.listdir(tmp_path)


def test_a_directory_without_a_run(tmp_path, capsys):
    with pytest.raises(SystemExit):
        eval_main(["--workdir", str(tmp_path)])
    assert "holds no config.json; it is not a training workdir" in capsys.readouterr().err
