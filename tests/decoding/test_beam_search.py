"""Beam search against references: greedy decoding (beam 1), a brute-force search over
every sequence, teacher-forced rescoring, the GNMT formulas, and unbatched rows."""

from __future__ import annotations

import itertools
import sys

import jax
import numpy as np
import pytest

from s2s_jax.config import DecodeConfig
from s2s_jax.decoding import beam_search, decode, greedy_decode
from s2s_jax.decoding.beam_search import best_extensions, best_future_score
from s2s_jax.decoding.common import NEG_INF, constrain_eos
from s2s_jax.models.generator import log_softmax
from s2s_jax.vocab import EOS_ID, PAD_ID
from tests.conftest import random_batch, tiny_model
from tests.decoding.helpers import (
    SRC,
    assert_eos_then_pad,
    in_bfloat16,
    lengths,
    random_model,
    standard_model,
    teacher_forced,
)

# With the exhaustive test's plain LSTM, every cell, attention score and attention style appears.
VARIANTS = {
    "gru-dot-luong": dict(cell="gru", attention="dot"),
    "rnn-bi-general-bahdanau": dict(cell="rnn", bidirectional=True, attention="general", attention_style="bahdanau"),
    "lstm-additive-luong-feed": dict(cell="lstm", attention="additive", input_feeding=True),
    "gru-context-every-step": dict(cell="gru", attention="none", context_every_step=True),
}
BEAM = dict(beam_size=4, n_best=3, max_len=6, return_attention=True)


def _lp(length, alpha):
    return ((5.0 + length) / 6.0) ** alpha


def test_best_future_score_is_the_maximum_over_lengths():
    log_prob = np.array([[-3.0, -0.5, -np.inf], [-np.inf, -np.inf, -np.inf], [-2.0, -7.0, -1.0]], np.float32)
    shortest, longest = np.array([2, 3, 4]), np.array([9, 3, 6])
    for alpha in (-1.0, 0.0, 0.6, 2.0):
        bound = np.asarray(best_future_score(log_prob, shortest, longest, alpha))
        expected = [max(np.max(log_prob[b]) / _lp(n, alpha) for n in range(shortest[b], longest[b] + 1))
                    for b in range(3)]
        np.testing.assert_allclose(bound, expected, rtol=1e-6)


def _every_extension(logits, log_prob, t, limits, min_len, n):
    """best_extensions' reference: the top n of every beam's every extension, by jax.lax.top_k."""
    batch, k = log_prob.shape
    lp = constrain_eos(log_softmax(logits), t, limits, min_len)
    lp = np.where(np.asarray(lp) <= NEG_INF, -np.inf, lp)
    return jax.lax.top_k((log_prob[:, :, None] + lp.reshape(batch, k, -1)).reshape(batch, -1), n)


@pytest.mark.parametrize("eos", [EOS_ID, 500])
@pytest.mark.parametrize("rounded", [False, True])
def test_best_extensions_are_the_top_of_every_extension(rounded, eos, monkeypatch):
    """Against jax.lax.top_k over every extension: live and dead beams (a sentence with none),
    EOS banned (t < min_len) and forced (a row's last position), a vocabulary that is no multiple
    of the column depth. Distinct logits leave the column search sure of its answer (it is unsure
    only of k + 2 columns tied); rounded ones tie everywhere and take the fallback. EOS id 500 is
    in a column past the first 2n, which the search keeps only if its maximum says so."""
    for module in ("s2s_jax.decoding.beam_search", "s2s_jax.decoding.common"):  # modules, not the functions
        monkeypatch.setattr(sys.modules[module], "EOS_ID", eos)
    batch, k, vocab, n = 4, 3, 1001, 6
    rng = np.random.default_rng(int(rounded))
    logits = rng.permutation(batch * k * vocab).reshape(batch * k, vocab).astype(np.float32) / 1000.0
    if rounded:
        logits = np.round(logits)
    log_prob = np.log(rng.random((batch, k))).astype(np.float32)
    log_prob[0, 1:] = -np.inf  # one live beam
    log_prob[1] = -np.inf  # a finished sentence
    for t, min_len in ((0, 2), (2, 2), (5, 0)):
        limits = np.full(batch * k, 9, np.int32)
        limits[2 * k:3 * k] = t + 1  # EOS forced in the third sentence
        values, indices = best_extensions(logits, log_prob, t, limits, min_len, n)  # eager: no cached trace
        want_values, want_indices = _every_extension(logits, log_prob, t, limits, min_len, n)
        np.testing.assert_array_equal(np.asarray(values), np.asarray(want_values))
        np.testing.assert_array_equal(np.asarray(indices), np.asarray(want_indices))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_beam_of_one_is_greedy(dtype):
    model, params = standard_model()
    model = in_bfloat16(model) if dtype == "bfloat16" else model
    greedy = np.asarray(greedy_decode(model, params, SRC, 8))
    tokens, _ = beam_search(model, params, SRC, beam_size=1, max_len=8, length_penalty=0.0)
    np.testing.assert_array_equal(np.asarray(tokens)[:, 0], greedy)
    via_config = decode(model, params, SRC, DecodeConfig(strategy="beam", beam_size=1, length_penalty=0.0, max_len_b=8))
    np.testing.assert_array_equal(np.asarray(via_config), greedy)


def _brute_force(model, params, src, vocab, max_len, alpha):
    """Every sequence of at most ``max_len`` tokens ending in (only one) EOS, its teacher-forced
    score per source row: (sequences [N, max_len], scores [batch, N])."""
    seqs = [[*p, EOS_ID] for n in range(max_len) for p in itertools.product(
        [v for v in range(vocab) if v != EOS_ID], repeat=n)]
    tokens = np.full((len(seqs), max_len), PAD_ID, np.int32)
    for i, s in enumerate(seqs):
        tokens[i, :len(s)] = s
    log_prob, _ = teacher_forced(model, params, src, np.broadcast_to(tokens, (len(src), *tokens.shape)))
    return tokens, log_prob / _lp(lengths(tokens), alpha)[None]


def _peaked_model(vocab, max_len, n_best, src):
    """A random model with peaked distributions (scale 2) whose exact n-best lists are not
    degenerate: the winners differ in length, the length penalty changes some, and no
    near-ties make the order fragile. The first such seed."""
    for seed in range(20):
        model, params = random_model(tiny_model(tgt_vocab_size=vocab), scale=2.0, seed=seed, eos_bias=-1.0)
        seqs, plain = _brute_force(model, params, src, vocab, max_len, 0.0)
        _, long = _brute_force(model, params, src, vocab, max_len, 2.0)
        top = -np.sort(-plain, axis=1)[:, :n_best + 1]
        if (len(set(lengths(seqs[plain.argmax(1)]))) > 1 and np.any(plain.argmax(1) != long.argmax(1))
                and np.all(-np.diff(top, axis=1) > 1e-3)):
            return model, params
    raise AssertionError("no seed gives a non-degenerate model")


def test_exhaustive_beam_is_brute_force():
    vocab, max_len, n_best = 6, 4, 6
    beam_size = vocab * (vocab - 1) ** (max_len - 2)  # room for every candidate: the search is exact
    src = random_batch(3, 5, 4, seed=2)["src"]
    model, params = _peaked_model(vocab, max_len, n_best, src)
    for alpha in (0.0, 0.6, 2.0, -0.5):
        tokens, scores = beam_search(model, params, src, beam_size=beam_size, max_len=max_len,
                                     length_penalty=alpha, n_best=n_best)
        seqs, expected = _brute_force(model, params, src, vocab, max_len, alpha)
        for b in range(len(src)):
            order = np.argsort(-expected[b], kind="stable")[:n_best]
            np.testing.assert_allclose(np.asarray(scores)[b], expected[b, order], atol=1e-5)
            np.testing.assert_array_equal(np.asarray(tokens)[b], seqs[order])


@pytest.mark.parametrize("name", list(VARIANTS))
def test_scores_are_teacher_forced_log_probs(name):
    model, params = random_model(tiny_model(**VARIANTS[name]), scale=0.6, eos_bias=1.0)
    tokens, scores, attention = (np.asarray(x) for x in beam_search(model, params, SRC, length_penalty=0.0, **BEAM))
    log_prob, tf_attention = teacher_forced(model, params, SRC, tokens)
    np.testing.assert_allclose(scores, log_prob, atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(attention, tf_attention, atol=1e-5)
    assert_eos_then_pad(tokens)
    assert np.all(np.diff(scores, axis=1) <= 0), "n-best not sorted"
    for row in tokens:
        assert len({tuple(h[:n]) for h, n in zip(row, lengths(row), strict=True)}) == BEAM["n_best"]


def test_bfloat16_scores_are_its_teacher_forced_log_probs():
    """In bfloat16 the decoding step and the teacher-forced pass still compute the same model."""
    model, params = random_model(tiny_model(**VARIANTS["lstm-additive-luong-feed"]), scale=0.6, eos_bias=1.0)
    model = in_bfloat16(model)
    tokens, scores, _ = (np.asarray(x) for x in beam_search(model, params, SRC, length_penalty=0.0, **BEAM))
    log_prob, _ = teacher_forced(model, params, SRC, tokens)
    np.testing.assert_allclose(scores, log_prob, atol=2e-3, rtol=1e-3)
    assert_eos_then_pad(tokens)


def test_length_and_coverage_penalties_follow_gnmt():
    model, params = standard_model()
    alpha, beta = 0.8, 0.4
    tokens, scores, attention = (np.asarray(x) for x in beam_search(
        model, params, SRC, length_penalty=alpha, coverage_penalty=beta, **BEAM))
    log_prob, _ = teacher_forced(model, params, SRC, tokens)
    real = np.broadcast_to(SRC[:, None, :] != PAD_ID, attention.shape[:2] + SRC.shape[1:])
    coverage = np.log(np.minimum(attention.sum(axis=2), 1.0), where=real, out=np.zeros(real.shape))
    penalty = beta * coverage.sum(-1)
    assert np.any(penalty < -0.5), "coverage penalty too small to check"
    np.testing.assert_allclose(scores, log_prob / _lp(lengths(tokens), alpha) + penalty, atol=1e-4, rtol=1e-5)


def test_min_len_max_len_a_and_independent_rows():
    model, params = standard_model()
    free_tokens = np.asarray(beam_search(model, params, SRC, length_penalty=0.0, **BEAM)[0])
    min_len, max_len_a, max_len = 3, 0.5, 2
    src_lengths = np.sum(SRC != PAD_ID, axis=1)
    limits = np.floor(max_len_a * src_lengths).astype(int) + max_len
    assert len(set(limits)) > 1 and np.any(lengths(free_tokens) <= min_len), "a weak check"
    kw = dict(beam_size=4, n_best=3, length_penalty=0.6, min_len=min_len, max_len_a=max_len_a, max_len=max_len)
    tokens, scores = (np.asarray(x) for x in beam_search(model, params, SRC, **kw))
    assert_eos_then_pad(tokens)
    n = lengths(tokens)
    assert np.all(n >= min_len + 1) and np.all(n <= limits[:, None])
    assert np.any(n == limits[:, None]), "no hypothesis reaches its row's limit"
    row = int(np.argmin(src_lengths))  # alone, without the batch's padding
    alone_tokens, alone_scores = beam_search(model, params, SRC[row:row + 1, :src_lengths[row]], **kw)
    width = alone_tokens.shape[-1]
    np.testing.assert_array_equal(np.asarray(alone_tokens)[0], tokens[row, :, :width])
    assert np.all(tokens[row, :, width:] == PAD_ID)
    np.testing.assert_allclose(np.asarray(alone_scores)[0], scores[row], atol=1e-5)
