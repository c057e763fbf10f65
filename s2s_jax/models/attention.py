"""Attention over the encoder outputs: dot, general and additive scores.

Scores (Luong et al. 2015, eq. 8; Bahdanau et al. 2015, appendix A.1.2):
  dot:      score(h, m_s) = h . m_s
  general:  score(h, m_s) = h . (W_a m_s)
  additive: score(h, m_s) = v . tanh(W_q h + W_k m_s)   (Luong's "concat")
The memory-side terms (``m_s`` itself, ``W_a m_s`` or ``W_k m_s``) do not depend
on the decoder step: :meth:`Attention.keys` computes them once per sentence.
PAD positions get weight exactly 0; a row with no real token gets a zero context.
The projections run in ``dtype`` (:mod:`s2s_jax.models.matmul`); the scores, the
softmax and the weighted sum are per-row matrix-vector products, which no matrix unit
runs, so they stay float32.

Several consecutive query rows may share one sentence's keys and memory: the beams of beam
search read their sentence's encoder output as it is, not a copy per beam, so each step reads
the memory once per sentence (BENCHMARKS.md, "Beams share the encoder output").
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from s2s_jax.models.matmul import Dense

_MASKED = -1e9  # finite, so a row of PAD gives no NaN


def weighted_sum(weights: jax.Array, values: jax.Array) -> jax.Array:
    """weights [rows, src_len] with rows = batch * group, values [batch, src_len, d] -> [rows, d]
    float32: row r's weighted sum of sentence r // group's values."""
    batch, src_len = values.shape[:2]
    group = weights.shape[0] // batch
    summed = jnp.einsum("bgs,bsd->bgd", weights.reshape(batch, group, src_len), values.astype(jnp.float32))
    return summed.reshape(weights.shape[0], -1)


@jax.checkpoint
def additive_scores(keys: jax.Array, q: jax.Array, v: jax.Array) -> jax.Array:
    """v . tanh(k_s + q): keys [batch, src_len, hidden], q [batch, group, hidden], v [hidden, 1]
    -> [batch, group, src_len], float32. Recomputed in the backward pass: storing the
    [batch, group, src_len, hidden] tanh of every decoder step costs more memory traffic than
    computing it again."""
    return (jnp.tanh(keys.astype(jnp.float32)[:, None] + q[:, :, None, :]) @ v)[..., 0]


class AdditiveEnergy(nn.Module):
    """The vector v of the additive score, a parameter ``kernel`` [hidden, 1]."""

    @nn.compact
    def __call__(self, keys: jax.Array, q: jax.Array) -> jax.Array:
        v = self.param("kernel", nn.initializers.lecun_normal(), (q.shape[-1], 1))
        return additive_scores(keys, q, v)


class Attention(nn.Module):
    kind: str  # "dot" | "general" | "additive"
    hidden_size: int
    dtype: Any = jnp.float32

    def setup(self):
        if self.kind in ("general", "additive"):
            self.key_proj = Dense(self.hidden_size, use_bias=False, dtype=self.dtype)
        if self.kind == "additive":
            self.query_proj = Dense(self.hidden_size, dtype=self.dtype)
            self.energy = AdditiveEnergy()

    def keys(self, memory: jax.Array) -> jax.Array:
        """[batch, src_len, enc_dim] -> [batch, src_len, key_dim], once per sentence."""
        return memory if self.kind == "dot" else self.key_proj(memory)

    def __call__(self, query: jax.Array, keys: jax.Array, memory: jax.Array,
                 mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        """query [rows, hidden] with rows = batch * group, keys [batch, src_len, key_dim], memory
        [batch, src_len, enc_dim], mask [batch, src_len] -> (context [rows, enc_dim], weights
        [rows, src_len]). Query row r reads sentence r // group (group 1: one row per sentence)."""
        f32 = jnp.float32
        batch, src_len = mask.shape
        group = query.shape[0] // batch
        if self.kind == "additive":
            q = self.query_proj(query)
            scores = self.energy(keys, q.reshape(batch, group, -1))
        else:
            scores = jnp.einsum("bsh,bgh->bgs", keys.astype(f32), query.reshape(batch, group, -1).astype(f32))
        scores = jnp.where(mask[:, None], scores, _MASKED)
        weights = (jax.nn.softmax(scores, axis=-1) * mask[:, None]).reshape(batch * group, src_len)
        return weighted_sum(weights, memory), weights
