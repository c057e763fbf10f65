"""What every decoding strategy shares: its compilation and its length limits.

``max_len`` counts output tokens, EOS included. With ``max_len_a`` > 0 each
row's limit is ``floor(max_len_a * source_length) + max_len`` (the ``a * x + b``
of fairseq and OpenNMT). At a row's last position EOS is the only choice, so
every row ends with EOS; before ``min_len`` tokens EOS is not allowed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from s2s_jax.vocab import EOS_ID, PAD_ID

NEG_INF = -1e9

# XLA:CPU hands reductions, and the dots, to YNNPACK by default. In a decoding loop, whose every
# step is a [rows, vocab] generator matmul followed by a log-softmax, YNNPACK's reductions run
# the step at a third of the speed of XLA's own kernels (benchmarks/generator_step.py). Its dots
# are the fastest there are: a bfloat16 x bfloat16 -> float32 dot runs on the matrix units only
# through YNNPACK, and with the generator's kernel read by rows ([vocab, dim]) a float32 step
# product is faster on YNNPACK than on XLA's kernels too. So decoding keeps YNNPACK for its dots alone.
CPU_DECODE_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}


def decode_jit(static_argnames: Sequence[str]) -> Callable[[Callable], Callable]:
    """``jax.jit`` for a decoding loop, compiled on CPU with ``CPU_DECODE_OPTIONS``; the result
    also has ``.lower``. The backend is read on the first call, so importing initialises nothing."""
    def wrap(fn: Callable) -> Callable:
        @functools.cache
        def jitted() -> Callable:
            options = CPU_DECODE_OPTIONS if jax.default_backend() == "cpu" else None
            return jax.jit(fn, static_argnames=tuple(static_argnames), compiler_options=options)

        @functools.wraps(fn)
        def call(*args, **kwargs):
            return jitted()(*args, **kwargs)

        call.lower = lambda *args, **kwargs: jitted().lower(*args, **kwargs)
        return call

    return wrap


def output_limits(src: jax.Array, max_len: int, max_len_a: float = 0.0) -> tuple[int, jax.Array]:
    """(static output width, per-row limits [batch]) for ``src`` [batch, src_len]."""
    width = int(max_len_a * src.shape[1]) + max_len
    lengths = jnp.sum(src != PAD_ID, axis=1)
    limits = jnp.floor(max_len_a * lengths).astype(jnp.int32) + max_len
    return width, jnp.clip(limits, 1, width)


def eos_constraints(t: jax.Array, limits: jax.Array, min_len: int = 0) -> tuple[jax.Array, jax.Array]:
    """(ban [rows], force [rows]) at output position ``t`` (0-based): EOS is banned while
    t < min_len and forced (every other token banned) at a row's last position ``limits - 1``."""
    return (t < min_len) & (t < limits - 1), t >= limits - 1


def constrain_eos(scores: jax.Array, t: jax.Array, limits: jax.Array, min_len: int = 0) -> jax.Array:
    """Mask ``scores`` [rows, vocab] (log-probabilities or logits) at output position ``t`` with
    NEG_INF as :func:`eos_constraints` says."""
    is_eos = jnp.arange(scores.shape[-1]) == EOS_ID
    ban_eos, force_eos = eos_constraints(t, limits, min_len)
    scores = jnp.where(ban_eos[:, None] & is_eos, NEG_INF, scores)
    return jnp.where(force_eos[:, None] & ~is_eos, NEG_INF, scores)
