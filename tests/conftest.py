"""Shared fixtures: tiny models and padded random batches, so tests compile little."""

from __future__ import annotations

import os
import shutil
import tempfile

# One persistent JAX compilation cache for the whole run, set before JAX is imported: the xdist
# workers and the tests' subprocesses inherit it through the environment. Many tests build the
# same small programs through new jit objects (a fresh train() per run, a subprocess per CLI),
# which the in-memory cache cannot share; the cache is removed when the run ends.
_OWN_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if _OWN_CACHE:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="s2s-jax-test-cache-")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from s2s_jax.config import ModelConfig  # noqa: E402
from s2s_jax.vocab import BOS_ID, EOS_ID, PAD_ID  # noqa: E402

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


def pytest_unconfigure(config):
    if _OWN_CACHE and not hasattr(config, "workerinput"):  # the process that made the cache removes it
        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
