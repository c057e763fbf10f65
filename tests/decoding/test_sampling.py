"""Ancestral sampling: determinism by key, the greedy limits of top_k and top_p, and
first-token frequencies against the tempered, truncated softmax."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from s2s_jax.config import DecodeConfig
from s2s_jax.decoding import decode, greedy_decode, sample_decode
from s2s_jax.models.seq2seq import init_decoder
from s2s_jax.vocab import BOS_ID
from tests.decoding.helpers import SRC, assert_eos_then_pad, in_bfloat16, standard_model

MAX_LEN = 8


def test_same_key_same_output_and_keys_differ():
    model, params = standard_model()
    a = np.asarray(sample_decode(model, params, SRC, jax.random.key(1), max_len=MAX_LEN))
    b = np.asarray(sample_decode(model, params, SRC, jax.random.key(1), max_len=MAX_LEN))
    c = np.asarray(sample_decode(model, params, SRC, jax.random.key(2), max_len=MAX_LEN))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert_eos_then_pad(a)
    cfg = DecodeConfig(strategy="sample", max_len_b=MAX_LEN)
    np.testing.assert_array_equal(np.asarray(decode(model, params, SRC, cfg, jax.random.key(1))), a)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_top_k_one_and_tiny_top_p_are_greedy(dtype):
    model, params = standard_model()
    model = in_bfloat16(model) if dtype == "bfloat16" else model
    greedy = np.asarray(greedy_decode(model, params, SRC, MAX_LEN))
    for key in (jax.random.key(0), jax.random.key(1)):
        top_k = sample_decode(model, params, SRC, key, temperature=2.0, top_k=1, max_len=MAX_LEN)
        top_p = sample_decode(model, params, SRC, key, temperature=2.0, top_p=1e-6, max_len=MAX_LEN)
        np.testing.assert_array_equal(np.asarray(top_k), greedy)
        np.testing.assert_array_equal(np.asarray(top_p), greedy)


def _tempered(log_probs: np.ndarray, temperature: float, top_k: int) -> np.ndarray:
    """softmax(log_probs / temperature) over the ``top_k`` most probable tokens."""
    logits = log_probs / temperature
    kept = np.argsort(-logits)[:top_k]
    probs = np.zeros_like(logits)
    probs[kept] = np.exp(logits[kept] - logits[kept].max())
    return probs / probs.sum()


def test_first_token_frequencies_follow_tempered_top_k_softmax():
    model, params = standard_model()
    n, top_k = 4000, 3
    state, step, _ = init_decoder(model, params, SRC[:1])
    log_probs = np.asarray(step(state, np.array([BOS_ID]))[0])[0]
    # A temperature that visibly changes the distribution without making it one-hot.
    temperature = next(t for t in (0.3, 0.5, 2.0, 4.0, 0.1, 0.05) if _tempered(log_probs, t, top_k).max() < 0.8
                       and np.abs(_tempered(log_probs, t, top_k) - _tempered(log_probs, 1.0, top_k)).max() > 0.1)
    src = np.repeat(SRC[:1], n, axis=0)
    tokens = np.asarray(sample_decode(model, params, src, jax.random.key(0), temperature=temperature,
                                      top_k=top_k, max_len=2))
    freq = np.bincount(tokens[:, 0], minlength=len(log_probs)) / n
    np.testing.assert_allclose(freq, _tempered(log_probs, temperature, top_k), atol=0.03)
