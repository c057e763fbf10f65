"""The generator: a linear layer and log-softmax over the target vocabulary.

With ``tie_embeddings`` the output matrix is the target embedding matrix
(Press & Wolf 2017); a decoder output wider than the embedding is first
projected down to it.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


class Generator(nn.Module):
    vocab_size: int
    embedding: nn.Embed | None = None  # tied output matrix, when given
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [..., dim] -> log-probabilities [..., vocab] in float32."""
        if self.embedding is None:
            logits = nn.Dense(self.vocab_size, dtype=self.dtype, name="output")(x)
        else:
            if x.shape[-1] != self.embedding.features:
                x = nn.Dense(self.embedding.features, use_bias=False, dtype=self.dtype, name="tied_projection")(x)
            bias = self.param("bias", nn.initializers.zeros, (self.vocab_size,))
            logits = self.embedding.attend(x.astype(self.dtype)) + bias
        return jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
