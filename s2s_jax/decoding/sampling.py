"""Ancestral sampling: each step draws the next token from the model's distribution,
optionally sharpened by a temperature and truncated to the top k tokens (Fan et al.
2018) or to the nucleus, the smallest set of tokens holding probability top_p
(Holtzman et al. 2020). Same key, same samples."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from s2s_jax.decoding.common import decode_jit
from s2s_jax.decoding.greedy import decode_token_by_token
from s2s_jax.decoding.selection import top_k as select_top_k
from s2s_jax.errors import ConfigError
from s2s_jax.models.seq2seq import Seq2Seq


def filter_logits(logits: jax.Array, top_k: int = 0, top_p: float = 1.0) -> jax.Array:
    """logits [rows, vocab] -> the same with tokens outside the top ``top_k`` (0: all) and
    outside the ``top_p`` nucleus (1.0: all) set to -inf. The most probable token always stays."""
    if top_k > 0:
        kth = select_top_k(logits, min(top_k, logits.shape[-1]))[0][:, -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    if top_p < 1.0:
        ordered = jnp.sort(logits, axis=-1)[:, ::-1]
        probs = jax.nn.softmax(ordered, axis=-1)
        # A token is in the nucleus if the more probable tokens hold less than top_p.
        in_nucleus = jnp.cumsum(probs, axis=-1) - probs < top_p
        cutoff = jnp.min(jnp.where(in_nucleus, ordered, jnp.inf), axis=-1, keepdims=True)
        logits = jnp.where(logits < cutoff, -jnp.inf, logits)
    return logits


def sample_decode(model: Seq2Seq, params, src: jax.Array, key: jax.Array, *, temperature: float = 1.0,
                  top_k: int = 0, top_p: float = 1.0, max_len: int = 50, min_len: int = 0,
                  max_len_a: float = 0.0) -> jax.Array:
    """src [batch, src_len] -> tokens [batch, width]: each row sampled token by token, EOS, then PAD.

    Step t draws from ``softmax(logits / temperature)`` restricted by ``top_k`` and
    ``top_p`` with the key ``fold_in(key, t)``; the length limits are greedy decoding's.
    ``top_k=1`` (or a tiny ``top_p``) gives greedy decoding's output.
    """
    if top_k < 0:
        raise ConfigError(f"top_k (decode.top_k) must be >= 0; got {top_k}.")
    if not 0.0 < top_p <= 1.0:
        raise ConfigError(f"top_p (decode.top_p) must be in (0, 1]; got {top_p}.")
    if isinstance(temperature, (int, float)) and temperature <= 0:
        raise ConfigError(f"temperature (decode.temperature) must be positive; got {temperature}.")
    return _sample_decode(model, params, src, key, temperature, top_k=top_k, top_p=top_p, max_len=max_len,
                          min_len=min_len, max_len_a=max_len_a)


@decode_jit(static_argnames=("model", "top_k", "top_p", "max_len", "min_len", "max_len_a"))
def _sample_decode(model: Seq2Seq, params, src: jax.Array, key: jax.Array, temperature: float | jax.Array, *,
                   top_k: int, top_p: float, max_len: int, min_len: int, max_len_a: float) -> jax.Array:
    def choose(logits: jax.Array, t: jax.Array) -> jax.Array:
        logits = filter_logits(logits / temperature, top_k, top_p)
        return jax.random.categorical(jax.random.fold_in(key, t), logits, axis=-1)

    return decode_token_by_token(model, params, src, choose, max_len, max_len_a, min_len, return_attention=False)
