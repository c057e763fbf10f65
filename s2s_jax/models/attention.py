"""Attention over the encoder outputs: dot, general and additive scores.

Scores (Luong et al. 2015, eq. 8; Bahdanau et al. 2015, appendix A.1.2):
  dot:      score(h, m_s) = h . m_s
  general:  score(h, m_s) = h . (W_a m_s)
  additive: score(h, m_s) = v . tanh(W_q h + W_k m_s)   (Luong's "concat")
The memory-side terms (``m_s`` itself, ``W_a m_s`` or ``W_k m_s``) do not depend
on the decoder step: :meth:`Attention.keys` computes them once per sentence.
PAD positions get weight exactly 0; a row with no real token gets a zero context.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

_MASKED = -1e9  # finite, so a row of PAD gives no NaN


class Attention(nn.Module):
    kind: str  # "dot" | "general" | "additive"
    hidden_size: int
    dtype: Any = jnp.float32

    def setup(self):
        if self.kind == "general":
            self.key_proj = nn.Dense(self.hidden_size, use_bias=False, dtype=self.dtype)
        elif self.kind == "additive":
            self.key_proj = nn.Dense(self.hidden_size, use_bias=False, dtype=self.dtype)
            self.query_proj = nn.Dense(self.hidden_size, dtype=self.dtype)
            self.energy = nn.Dense(1, use_bias=False, dtype=self.dtype)

    def keys(self, memory: jax.Array) -> jax.Array:
        """[batch, src_len, enc_dim] -> [batch, src_len, key_dim], once per sentence."""
        return memory if self.kind == "dot" else self.key_proj(memory)

    def __call__(self, query: jax.Array, keys: jax.Array, memory: jax.Array,
                 mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        """query [batch, hidden] -> (context [batch, enc_dim], weights [batch, src_len])."""
        if self.kind == "additive":
            q = self.query_proj(query.astype(self.dtype))
            scores = self.energy(jnp.tanh(keys + q[:, None, :]))[..., 0]
        else:
            scores = jnp.einsum("bsh,bh->bs", keys, query.astype(keys.dtype))
        scores = jnp.where(mask, scores.astype(jnp.float32), _MASKED)
        weights = jax.nn.softmax(scores, axis=-1) * mask
        context = jnp.einsum("bs,bsd->bd", weights.astype(memory.dtype), memory)
        return context, weights
