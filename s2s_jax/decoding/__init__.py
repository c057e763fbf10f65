"""Decoding strategies: greedy, sampling and beam search, each one compiled program, and the
one dispatch from a :class:`DecodeConfig` to them."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from s2s_jax.config import DecodeConfig
from s2s_jax.decoding.beam_search import beam_search
from s2s_jax.decoding.greedy import greedy_decode
from s2s_jax.decoding.sampling import sample_decode
from s2s_jax.models.seq2seq import Seq2Seq


def decode_hypotheses(model: Seq2Seq, params, src: jax.Array, cfg: DecodeConfig,
                      key: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """Outputs of ``src`` [batch, src_len] under the strategy of ``cfg``: (tokens [batch, n_best,
    width], scores [batch, n_best]). Beam search gives its ``n_best`` best hypotheses and their
    scores; greedy decoding, or a sample drawn with ``key`` (None: key 0, so reruns agree), one
    output each, unscored (NaN)."""
    limits = dict(max_len=cfg.max_len_b, max_len_a=cfg.max_len_a, min_len=cfg.min_len)
    if cfg.strategy == "beam":
        return beam_search(model, params, src, beam_size=cfg.beam_size, n_best=cfg.n_best,
                           length_penalty=cfg.length_penalty, coverage_penalty=cfg.coverage_penalty, **limits)
    if cfg.strategy == "sample":
        key = jax.random.key(0) if key is None else key
        tokens = sample_decode(model, params, src, key, temperature=cfg.temperature, top_k=cfg.top_k,
                               top_p=cfg.top_p, **limits)
    else:
        tokens = greedy_decode(model, params, src, **limits)
    return tokens[:, None], jnp.full((tokens.shape[0], 1), jnp.nan, jnp.float32)


def decode(model: Seq2Seq, params, src: jax.Array, cfg: DecodeConfig, key: jax.Array | None = None) -> jax.Array:
    """The best output [batch, width] of ``src`` under the strategy of ``cfg``: greedy, the
    best beam hypothesis, or a sample drawn with ``key`` (see :func:`decode_hypotheses`)."""
    return decode_hypotheses(model, params, src, cfg, key)[0][:, 0]


__all__ = ["beam_search", "decode", "decode_hypotheses", "greedy_decode", "sample_decode"]
