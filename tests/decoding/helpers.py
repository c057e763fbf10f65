"""Shared by the decoding tests: random models without compiling ``init``, teacher-forced
rescoring of decoded tokens, and the output format every strategy must keep."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from s2s_jax.config import ModelConfig
from s2s_jax.decoding import greedy_decode
from s2s_jax.models.seq2seq import Seq2Seq
from s2s_jax.vocab import BOS_ID, EOS_ID, PAD_ID
from tests.conftest import random_batch, tiny_model

SRC = random_batch(3, 9, 6, seed=3)["src"]  # rows of length 9 and shorter


def random_model(cfg: ModelConfig, scale: float = 0.5, seed: int = 0, eos_bias: float = 0.0):
    """(model, params ~ uniform(-scale, scale)); the generator's EOS logit is shifted by
    ``eos_bias``. Parameters come from numpy, so nothing is compiled."""
    model = Seq2Seq(cfg)
    dummy = jnp.full((1, 3), 4, jnp.int32)
    shapes = jax.eval_shape(model.init, jax.random.key(0), dummy, dummy)["params"]
    rng = np.random.default_rng(seed)
    params = jax.tree_util.tree_map(lambda s: rng.uniform(-scale, scale, s.shape).astype(np.float32), shapes)
    params["decoder"]["generator"]["output"]["bias"][EOS_ID] += eos_bias
    return model, params


def in_bfloat16(model: Seq2Seq) -> Seq2Seq:
    """The same architecture with bfloat16 matmuls (it reads the same float32 parameters)."""
    return Seq2Seq(dataclasses.replace(model.cfg, dtype="bfloat16"))


@functools.cache
def standard_model(max_len: int = 8):
    """The model most decoding tests share (so they share compiled programs): GRU, dot attention,
    the first seed whose greedy outputs for ``SRC`` have different lengths, some cut at ``max_len``
    (so the tests do not hinge on how parameters happen to be laid out)."""
    for seed in range(20):
        model, params = random_model(tiny_model(cell="gru", attention="dot"), scale=0.6, seed=seed)
        n = lengths(np.asarray(greedy_decode(model, params, SRC, max_len)))
        if len(set(n)) > 1 and max(n) == max_len:
            return model, params
    raise AssertionError("no seed gives a non-degenerate model")


@functools.partial(jax.jit, static_argnums=0)
def _forward(model: Seq2Seq, params, src, tgt_in):
    log_probs, inter = model.apply({"params": params}, src, tgt_in, mutable=["intermediates"])
    return log_probs, inter["intermediates"]["attention"][0]


def lengths(tokens: np.ndarray) -> np.ndarray:
    """tokens [..., width] -> the number of tokens up to and including the first EOS [...]."""
    return np.argmax(tokens == EOS_ID, axis=-1) + 1


def teacher_forced(model: Seq2Seq, params, src: np.ndarray, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """src [batch, src_len], tokens [batch, N, width] -> (summed log-probabilities [batch, N]
    of each row up to its first EOS, attention [batch, N, width, src_len] zero after it),
    from one teacher-forced forward pass over ``[BOS] + tokens[:-1]``."""
    batch, n, width = tokens.shape
    flat = tokens.reshape(batch * n, width)
    tgt_in = np.concatenate([np.full((batch * n, 1), BOS_ID, np.int32), flat[:, :-1]], axis=1)
    log_probs, attention = _forward(model, params, np.repeat(src, n, axis=0), tgt_in)
    token_lp = np.take_along_axis(np.asarray(log_probs), flat[:, :, None], axis=2)[..., 0]
    inside = np.arange(width)[None] < lengths(flat)[:, None]
    attention = np.where(inside[:, :, None], np.asarray(attention), 0.0)
    return (np.where(inside, token_lp, 0.0).sum(1).reshape(batch, n),
            attention.reshape(batch, n, width, attention.shape[-1]))


def assert_eos_then_pad(tokens: np.ndarray) -> None:
    """Every row of tokens [..., width] has an EOS and only PAD after its first EOS."""
    flat = tokens.reshape(-1, tokens.shape[-1])
    assert np.all(np.any(flat == EOS_ID, axis=-1)), "a row without EOS"
    after = np.arange(flat.shape[1])[None] >= lengths(flat)[:, None]
    assert np.all(flat[after] == PAD_ID), "a token after EOS"
