"""Shared fixtures: tiny models and padded random batches, so tests compile little."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

# One persistent JAX compilation cache for the whole run, set before JAX is imported: the xdist
# workers and the tests' subprocesses inherit it through the environment. Many tests build the
# same small programs through new jit objects (a fresh train() per run, a subprocess per CLI),
# which the in-memory cache cannot share; the cache is removed when the run ends.
_OWN_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if _OWN_CACHE:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="s2s-jax-test-cache-")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
# The tests' programs are tiny and run a few times each, so LLVM's optimisation of the code
# XLA emits (not XLA's own HLO passes: the fusions and library calls are those of any run)
# costs more than it saves: -O0 took the suite from 12.6 to 10.6 minutes on a 2-core AMD Zen 3.
# A process that runs hundreds of steps gets :func:`optimised_env` instead.
_XLA_FLAGS = os.environ.get("XLA_FLAGS", "")
if "xla_backend_optimization_level" not in _XLA_FLAGS:
    os.environ["XLA_FLAGS"] = f"{_XLA_FLAGS} --xla_backend_optimization_level=0".strip()

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from s2s_jax.config import Config, ModelConfig  # noqa: E402
from s2s_jax.vocab import BOS_ID, EOS_ID, PAD_ID  # noqa: E402

SRC_VOCAB, TGT_VOCAB = 13, 11


def optimised_env() -> dict[str, str]:
    """This process's environment with the caller's XLA flags: a subprocess compiles at XLA's
    default optimisation level, where a run of hundreds of steps saves more than it costs."""
    return dict(os.environ, XLA_FLAGS=_XLA_FLAGS)


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


def run_optimised(cfg: Config, workdir: str) -> None:
    """``s2s_jax.loop.run(cfg, workdir)`` in a subprocess of :func:`optimised_env`."""
    code = ("import json, sys; from s2s_jax.config import Config; from s2s_jax.loop import run; "
            "run(Config.from_dict(json.loads(sys.argv[1])), sys.argv[2])")
    done = subprocess.run([sys.executable, "-c", code, json.dumps(cfg.to_dict()), workdir],
                          env=optimised_env(), capture_output=True, text=True)
    assert done.returncode == 0, f"the run failed:\n{done.stderr[-4000:]}"


@pytest.fixture
def batch() -> dict[str, np.ndarray]:
    return random_batch(4, 7, 6)


def pytest_unconfigure(config):
    if _OWN_CACHE and not hasattr(config, "workerinput"):  # the process that made the cache removes it
        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
