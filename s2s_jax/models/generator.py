"""The generator: a linear layer and log-softmax over the target vocabulary.

With ``maxout_units`` l > 0 a deep output layer comes first (Bahdanau et al.
2015, appendix A.2.2; Cho et al. 2014, appendix A): t~ = W x + b with 2l
units, t_j = max(t~_{2j-1}, t~_{2j}), and the vocabulary layer reads the l
units of t. With ``tie_embeddings`` the output matrix is the target embedding
matrix (Press & Wolf 2017); an input wider than the embedding is first
projected down to it.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from s2s_jax.models.matmul import Dense, dot


class Generator(nn.Module):
    vocab_size: int
    embedding: nn.Embed | None = None  # tied output matrix, when given
    maxout_units: int = 0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [..., dim] -> log-probabilities [..., vocab] in float32."""
        if self.maxout_units:
            pairs = Dense(2 * self.maxout_units, dtype=self.dtype, name="maxout")(x)
            x = jnp.max(pairs.reshape(*pairs.shape[:-1], self.maxout_units, 2), axis=-1)
        if self.embedding is None:
            logits = Dense(self.vocab_size, dtype=self.dtype, name="output")(x)
        else:
            if x.shape[-1] != self.embedding.features:
                x = Dense(self.embedding.features, use_bias=False, dtype=self.dtype, name="tied_projection")(x)
            bias = self.param("bias", nn.initializers.zeros, (self.vocab_size,))
            logits = dot(x, self.embedding.embedding.T, self.dtype) + bias
        return jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
