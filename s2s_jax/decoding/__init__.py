"""Decoding strategies: greedy, sampling and beam search, each one compiled program."""

from __future__ import annotations

import jax

from s2s_jax.config import DecodeConfig
from s2s_jax.decoding.beam_search import beam_search
from s2s_jax.decoding.greedy import greedy_decode
from s2s_jax.decoding.sampling import sample_decode
from s2s_jax.models.seq2seq import Seq2Seq


def decode(model: Seq2Seq, params, src: jax.Array, cfg: DecodeConfig, key: jax.Array | None = None) -> jax.Array:
    """The best output [batch, width] of ``src`` under the strategy of ``cfg``: greedy, the
    best beam hypothesis, or a sample drawn with ``key`` (None: key 0, so reruns agree)."""
    limits = dict(max_len=cfg.max_len_b, max_len_a=cfg.max_len_a, min_len=cfg.min_len)
    if cfg.strategy == "beam":
        tokens, _ = beam_search(model, params, src, beam_size=cfg.beam_size, length_penalty=cfg.length_penalty,
                                coverage_penalty=cfg.coverage_penalty, **limits)
        return tokens[:, 0]
    if cfg.strategy == "sample":
        key = jax.random.key(0) if key is None else key
        return sample_decode(model, params, src, key, temperature=cfg.temperature, top_k=cfg.top_k, top_p=cfg.top_p,
                             **limits)
    return greedy_decode(model, params, src, **limits)


__all__ = ["beam_search", "decode", "greedy_decode", "sample_decode"]
