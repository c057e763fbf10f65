"""The run's record: TensorBoard event files (read back with TensorBoard's own reader)
agree with metrics.jsonl, hold sample translations and attention heatmaps at every
evaluation, hide a resumed run's stale events; the loop's progress goes to stderr only."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import io
import os
import re

import matplotlib.image
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import IMAGES, SCALARS, TENSORS, EventAccumulator
from tensorboardX import SummaryWriter

import s2s_jax as s2s
from s2s_jax.errors import StorageError
from s2s_jax.loop import run
from s2s_jax.loop_parts import EXAMPLES_PER_EVAL, RunResult
from s2s_jax.plots import attention_examples
from s2s_jax.summary import TENSORBOARD_DIR, TRANSLATIONS_TAG, MetricsWriter, examples_markdown, read_metrics

pytestmark = pytest.mark.xdist_group("tiny_run")  # test_plot_cli.py reuses the run in the same worker

TRAIN_TAGS = {"loss", "perplexity", "token_accuracy", "learning_rate", "teacher_forcing_prob", "grad_norm",
              "tokens_per_s"}
EVAL_TAGS = {"loss", "perplexity", "token_accuracy", "bleu", "chrf", "exact_match"}
TEXT = f"{TRANSLATIONS_TAG}/text_summary"


def tiny_config() -> s2s.Config:
    """The copy task with a tiny attention model: 4 steps, evaluated at steps 2 and 4."""
    return s2s.get_preset("copy").replace(
        model={"embed_dim": 8, "hidden_size": 16, "cell": "rnn", "attention": "dot"},
        data={"synthetic_sizes": (64, 8, 8), "batch_size": 16, "eval_batch_size": 8, "bucket_lengths": (16,)},
        train={"num_steps": 4, "eval_every": 2, "log_every": 1, "checkpoint_every": 100})


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@dataclasses.dataclass
class TinyRun:
    workdir: str
    result: RunResult
    stdout: str
    stderr: str


@functools.cache
def tiny_run(basetemp: str) -> TinyRun:
    """One finished run per test session (and xdist worker), trained with stderr
    looking like a terminal so that the progress bars are drawn."""
    workdir = os.path.join(basetemp, "tiny_run")
    out, err = io.StringIO(), _Terminal()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        result = run(tiny_config(), workdir)
    return TinyRun(workdir, result, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> TinyRun:
    return tiny_run(str(tmp_path_factory.getbasetemp()))


def events(workdir: str, split: str) -> EventAccumulator:
    acc = EventAccumulator(os.path.join(workdir, TENSORBOARD_DIR, split),
                           size_guidance={SCALARS: 0, IMAGES: 0, TENSORS: 0})
    return acc.Reload()


def test_scalars_are_the_records_of_metrics_jsonl(finished):
    records = read_metrics(finished.workdir)
    for split, required in (("train", TRAIN_TAGS), ("validation", EVAL_TAGS), ("test", EVAL_TAGS)):
        acc = events(finished.workdir, split)
        assert required <= set(acc.Tags()["scalars"]), split
        mine = [r for r in records if r["split"] == split]
        for tag in required:
            got = [(e.step, e.value) for e in acc.Scalars(tag)]
            want = [(r["step"], r[tag]) for r in mine]
            assert [s for s, _ in got] == [s for s, _ in want], (split, tag)
            np.testing.assert_allclose([v for _, v in got], [v for _, v in want], rtol=1e-6, err_msg=tag)
    assert [r["step"] for r in records if r["split"] == "validation"] == [2, 4]


def test_each_evaluation_shows_sample_translations_and_attention_heatmaps(finished):
    acc = events(finished.workdir, "validation")
    assert [e.step for e in acc.Tensors(TEXT)] == [2, 4]
    for i in range(EXAMPLES_PER_EVAL):
        images = acc.Images(f"attention/{i}")
        assert [e.step for e in images] == [2, 4]
        pixels = matplotlib.image.imread(io.BytesIO(images[-1].encoded_image_string), format="png")
        assert pixels.shape[:2] == (images[-1].height, images[-1].width) and pixels.std() > 0
    # The last evaluation used the final parameters: its table is the greedy outputs of now.
    data, state = finished.result.data, finished.result.state
    split = data.splits["validation"]
    examples = attention_examples(state, split, data.src_tokenizer, data.tgt_tokenizer, range(EXAMPLES_PER_EVAL))
    want = examples_markdown(split.raw_src[:EXAMPLES_PER_EVAL], [ex.output for ex in examples],
                             split.raw_tgt[:EXAMPLES_PER_EVAL])
    assert acc.Tensors(TEXT)[-1].tensor_proto.string_val[0].decode() == want
    test_images = set(events(finished.workdir, "test").Tags()["images"])
    assert {f"attention/{i}" for i in range(EXAMPLES_PER_EVAL)} <= test_images


def test_attention_examples_match_decoding_each_sentence_unpadded(finished):
    data, state = finished.result.data, finished.result.state
    split = data.splits["validation"]
    i = int(np.argmin(split.src_lengths[:EXAMPLES_PER_EVAL]))  # the most padded of the examples
    [ex] = attention_examples(state, split, data.src_tokenizer, data.tgt_tokenizer, [i])
    tokens, attention = s2s.greedy_decode(state.model, state.params, split.src[i][None, :],
                                          state.config.decode.max_len_b, return_attention=True)
    tokens, attention = np.asarray(tokens[0]), np.asarray(attention[0])
    n_out = int(np.flatnonzero(tokens == s2s.EOS_ID)[0]) + 1 if s2s.EOS_ID in tokens else len(tokens)
    assert ex.output == data.tgt_tokenizer.decode(tokens) and ex.source == split.raw_src[i]
    assert ex.out_pieces == data.tgt_tokenizer.pieces(tokens[:n_out])
    assert ex.src_pieces == data.src_tokenizer.pieces(split.src[i])
    np.testing.assert_allclose(ex.weights, attention[:n_out], atol=1e-5)
    np.testing.assert_allclose(ex.weights.sum(axis=1), 1.0, atol=1e-5)  # no weight left on PAD


def test_loop_writes_progress_to_stderr_and_nothing_to_stdout(finished):
    assert finished.stdout == ""
    for bar in ("train:", "validation:", "test:"):
        assert bar in finished.stderr


def test_resume_hides_events_past_the_restored_step(tmp_path):
    workdir = str(tmp_path)
    with MetricsWriter(workdir) as first:
        for step in (1, 2, 3, 4):
            first.write(step, "train", {"loss": float(step), "grad_norm": 10.0 * step})
    with MetricsWriter(workdir) as resumed:
        resumed.truncate_after(2)  # what the loop does after restoring the step-2 checkpoint
        for step in (3, 4):
            resumed.write(step, "train", {"loss": -float(step)})
    acc = events(workdir, "train")
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [(1, 1.0), (2, 2.0), (3, -3.0), (4, -4.0)]
    assert [e.step for e in acc.Scalars("grad_norm")] == [1, 2]  # stale points of a tag not rewritten
    assert [(r["step"], r["loss"]) for r in read_metrics(workdir)] == [(1, 1.0), (2, 2.0), (3, -3.0), (4, -4.0)]


def test_only_the_enabled_writer_writes(tmp_path):
    with MetricsWriter(str(tmp_path), enabled=False) as w:
        w.write(1, "train", {"loss": 1.0})
        w.write_examples(1, "validation", ["a"], ["b"], ["c"])
    assert os.listdir(tmp_path) == []


def test_metrics_jsonl_has_one_object_per_line_and_non_numbers_only_there(tmp_path):
    with MetricsWriter(str(tmp_path)) as w:
        w.write(3, "validation", {"bleu": 12.5, "loss": float("nan"), "bleu_signature": "nrefs:1", "examples": 7})
    with open(tmp_path / "metrics.jsonl", encoding="utf-8") as f:
        assert f.read() == ('{"step": 3, "split": "validation", "bleu": 12.5, "loss": "nan", '
                            '"bleu_signature": "nrefs:1", "examples": 7}\n')
    assert set(events(str(tmp_path), "validation").Tags()["scalars"]) == {"bleu", "loss", "examples"}


def test_a_failed_event_write_is_one_sentence_and_never_hides_the_error_in_flight(tmp_path, monkeypatch):
    def disk_full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    workdir = str(tmp_path)
    logdir = os.path.join(workdir, TENSORBOARD_DIR, "validation")
    sentence = rf"^writing TensorBoard events into {re.escape(logdir)} failed: No space left on device \(.+ free\)\.$"
    writer, failing = MetricsWriter(workdir), MetricsWriter(workdir)
    for w in (writer, failing):
        w.write(1, "validation", {"loss": 1.0})
    monkeypatch.setattr(SummaryWriter, "flush", disk_full)
    monkeypatch.setattr(SummaryWriter, "close", disk_full)
    with pytest.raises(StorageError, match=sentence):
        writer.write(2, "validation", {"loss": 2.0})
    with pytest.raises(StorageError, match=sentence):
        writer.write_examples(2, "validation", ["a"], ["b"], ["c"])
    with pytest.raises(StorageError, match=sentence):
        writer.close()
    with pytest.raises(KeyError, match="in flight"), failing:
        raise KeyError("in flight")


def test_examples_table_escapes_markdown():
    table = examples_markdown(["a|b"], [""], ["`x`"])
    assert table.splitlines()[2] == "| `a\\|b` | (empty) | `'x'` |"
