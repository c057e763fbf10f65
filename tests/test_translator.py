"""Translator: input order, length batching invisible in the output, empty and over-long
inputs, n-best lists from beam search, all against decoding each sentence on its own."""

from __future__ import annotations

import functools
import logging
import os

import jax
import numpy as np
import pytest

import s2s_jax as s2s
from s2s_jax.checkpoint import Checkpointer
from s2s_jax.data.dataset import prepare_data
from s2s_jax.errors import ConfigError
from s2s_jax.fileio import atomic_write_text
from s2s_jax.translator import Hypothesis, _batches
from s2s_jax.vocab import EOS_ID

pytestmark = pytest.mark.xdist_group("translator_run")  # shares build_workdir with test_translate_cli.py

# Lengths 3 (bucket 8) and 10 (bucket 16), with empty strings between them.
SENTENCES = ["abc", "", "q7z0kx1m2n", "h3l", "9x2", "", "ab12cd34ef"]


@functools.cache
def build_workdir(root: str) -> str:
    """A run directory (config.json, tokenizers, checkpoint at step 3) of a tiny copy model with
    random parameters of a large scale, so its outputs vary; built without compiling anything."""
    path = os.path.join(root, "translator-run")
    cfg = s2s.get_preset("copy").replace(model={"embed_dim": 8, "hidden_size": 16},
                                         data={"synthetic_sizes": (64, 4, 4), "bucket_lengths": (8, 16),
                                               "eval_batch_size": 8},
                                         decode={"max_len_b": 12})
    cfg = prepare_data(cfg, path, splits=("train",)).config
    atomic_write_text(os.path.join(path, "config.json"), cfg.to_json())
    abstract = jax.eval_shape(functools.partial(s2s.create_train_state, cfg), jax.random.key(0))
    rng = np.random.default_rng(0)
    state = jax.tree_util.tree_map(lambda x: np.asarray(rng.uniform(-1.0, 1.0, x.shape), x.dtype), abstract)
    state = state.replace(step=np.asarray(3, np.int32), plateau=state.plateau._replace(scale=np.ones((), np.float32)))
    ckpt = Checkpointer(path)
    ckpt.save(state, jax.random.key(0), {"config": cfg.to_dict(), "data_iterator": {}, "loop": {}})
    ckpt.close()
    return path


@pytest.fixture(scope="module")
def translator(tmp_path_factory) -> s2s.Translator:
    return s2s.Translator.from_workdir(build_workdir(str(tmp_path_factory.getbasetemp())))


def alone(translator: s2s.Translator, sentence: str) -> np.ndarray:
    """The sentence's source ids (EOS-terminated, as the copy preset's data) as one unpadded row [1, length]."""
    assert translator.config.data.source_eos
    return np.asarray([[*translator.src_tokenizer.encode(sentence), EOS_ID]], np.int32)


def test_translations_are_in_input_order_and_equal_decoding_each_sentence_alone(translator):
    assert translator.step == 3
    out = translator.translate(SENTENCES)
    max_len = translator.config.decode.max_len_b
    expected = [translator.tgt_tokenizer.decode(np.asarray(
        s2s.greedy_decode(translator.model, translator.params, alone(translator, s), max_len))[0]) if s else ""
        for s in SENTENCES]
    assert out == expected
    assert len({t for t in out if t}) >= 3  # the model's outputs differ, so a mix-up would show
    assert translator.translate(SENTENCES, batch_size=2) == out
    assert translator.translate(SENTENCES[::-1]) == out[::-1]
    assert translator.translate([]) == [] and translator.translate([""]) == [""]


def test_over_long_input_is_truncated_with_one_warning(translator, caplog):
    limit = translator.config.data.max_len
    long = "k3" * limit
    with caplog.at_level(logging.WARNING, logger="s2s_jax"):
        out = translator.translate([long, "abc", long])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"2 of 3 inputs are longer than the model's limit of {limit} tokens "
                        "(data.bucket_lengths[-1]) and were truncated; the first is input 1."]
    assert out[0] == out[2] == translator.translate([long[:limit - 1]])[0]  # the last place is EOS's


def test_n_best_lists_equal_beam_search_on_each_sentence_alone(translator):
    hyps = translator.translate(SENTENCES, beam_size=3, n_best=2)
    cfg = translator.config.decode
    for sentence, got in zip(SENTENCES, hyps, strict=True):
        assert len(got) == 2 and all(isinstance(h, Hypothesis) for h in got)
        if not sentence:
            assert got == [Hypothesis(0.0, ""), Hypothesis(0.0, "")]
            continue
        tokens, scores = s2s.beam_search(translator.model, translator.params, alone(translator, sentence),
                                         beam_size=3, n_best=2, max_len=cfg.max_len_b,
                                         length_penalty=cfg.length_penalty)
        assert [h.text for h in got] == [translator.tgt_tokenizer.decode(t) for t in np.asarray(tokens)[0]]
        np.testing.assert_allclose([h.score for h in got], np.asarray(scores)[0], rtol=1e-5)
        assert got[0].score >= got[1].score
    # The 1-best of the same search, and a beam of one is greedy decoding (with its score).
    assert translator.translate(SENTENCES, beam_size=3) == [h[0].text for h in hyps]
    greedy = translator.hypotheses(SENTENCES, beam_size=1)
    assert [h[0].text for h in greedy] == translator.translate(SENTENCES)
    assert all(np.isfinite(h[0].score) for h in greedy)


def test_decode_options_override_the_runs(translator):
    short = translator.translate(SENTENCES, max_len_b=2)
    assert all(len(translator.tgt_tokenizer.encode(t)) <= 1 for t in short)  # EOS takes one of the two


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_best=2), r"n_best=2 needs a beam_size of at least 2 \(got 1\)\."),
    (dict(beam_size=2, n_best=3), r"n_best=3 needs a beam_size of at least 3 \(got 2\)\."),
    (dict(temperature=0.5), r"unknown decode option 'temperature'; choose from length_penalty, "),
    (dict(batch_size=-1), r"batch_size must be positive; got -1\."),
])
def test_bad_options_are_refused_in_one_sentence(translator, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        translator.translate(["abc"], **kwargs)


def test_a_string_is_not_a_list_of_sentences(translator):
    with pytest.raises(TypeError, match="a list of sentences"):
        translator.translate("abc")


def test_batches_are_length_sorted_bucketed_and_power_of_two_rows():
    lengths = [3, 0, 9, 1, 8, 12, 5, 2, 16, 7]
    ids = [list(range(4, 4 + n)) for n in lengths]
    batches = _batches(ids, (8, 16), batch_size=3)
    assert sorted(i for b in batches for i in b.indices) == [i for i, n in enumerate(lengths) if n]
    assert [[lengths[i] for i in b.indices] for b in batches] == [[1, 2, 3], [5, 7, 8], [9, 12, 16]]
    for b in batches:
        rows, width = b.src.shape
        assert width == (8 if lengths[b.indices[-1]] <= 8 else 16) and rows in (1, 2, 3)
        for row, i in enumerate(b.indices):
            assert list(b.src[row][b.src[row] != s2s.PAD_ID]) == ids[i]
    assert [b.src.shape for b in _batches(ids[:2], (8, 16), batch_size=64)] == [(1, 8)]
    assert [b.src.shape for b in _batches(ids[:5], (8, 16), batch_size=64)] == [(4, 8), (1, 16)]
