"""The bridge: the encoder's final state becomes the decoder's initial state.

copy:   the final carry of each encoder layer as it is (Sutskever et al. 2014);
zero:   zeros (attention models that read the source through attention alone);
linear: tanh(W s + b) per layer and carry part (Cho et al. 2014: h'_0 = tanh(V' c));
        needed when the sizes differ, e.g. after a bidirectional encoder.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from s2s_jax.config import ModelConfig
from s2s_jax.models.cells import Carry
from s2s_jax.models.matmul import Dense
from s2s_jax.precision import compute_dtype


class Bridge(nn.Module):
    cfg: ModelConfig

    @nn.compact
    def __call__(self, final: tuple[Carry, ...]) -> tuple[Carry, ...]:
        cfg = self.cfg
        if cfg.bridge == "copy":
            return final
        if cfg.bridge == "zero":
            return jax.tree_util.tree_map(
                lambda s: jnp.zeros((*s.shape[:-1], cfg.hidden_size), jnp.float32), final)
        out = []
        for layer, carry in enumerate(final):
            parts, treedef = jax.tree_util.tree_flatten(carry)
            mapped = [jnp.tanh(Dense(cfg.hidden_size, dtype=compute_dtype(cfg.dtype), name=f"layer{layer}_{i}")(p))
                      for i, p in enumerate(parts)]
            out.append(jax.tree_util.tree_unflatten(treedef, mapped))
        return tuple(out)
