"""Shared fixtures: tiny models and padded random batches, so tests compile little."""

from __future__ import annotations

import numpy as np
import pytest

from s2s_jax.config import ModelConfig
from s2s_jax.vocab import BOS_ID, EOS_ID, PAD_ID

SRC_VOCAB, TGT_VOCAB = 13, 11


def tiny_model(**overrides) -> ModelConfig:
    """A model small enough to compile in seconds; any field can be overridden."""
    base = dict(src_vocab_size=SRC_VOCAB, tgt_vocab_size=TGT_VOCAB, embed_dim=8, hidden_size=16, num_layers=1)
    if overrides.get("bidirectional"):
        base["bridge"] = "linear"
    return ModelConfig(**{**base, **overrides})


def random_batch(batch: int, src_len: int, tgt_len: int, seed: int = 0, min_len: int = 1,
                 src_vocab: int = SRC_VOCAB, tgt_vocab: int = TGT_VOCAB) -> dict[str, np.ndarray]:
    """Right-padded rows of random lengths: src [batch, src_len], tgt [batch, tgt_len + 1]
    = BOS y EOS PAD... The first row always fills the source."""
    rng = np.random.default_rng(seed)
    src = np.full((batch, src_len), PAD_ID, np.int32)
    tgt = np.full((batch, tgt_len + 1), PAD_ID, np.int32)
    for b in range(batch):
        n = src_len if b == 0 else int(rng.integers(min_len, src_len + 1))
        src[b, :n] = rng.integers(4, src_vocab, n)
        m = int(rng.integers(min_len, tgt_len))
        tgt[b, 0] = BOS_ID
        tgt[b, 1:m + 1] = rng.integers(4, tgt_vocab, m)
        tgt[b, m + 1] = EOS_ID
    return {"src": src, "tgt": tgt}


@pytest.fixture
def batch() -> dict[str, np.ndarray]:
    return random_batch(4, 7, 6)
