"""Looking up per-token tables: what decoding precomputes for every token of a vocabulary
(:func:`~s2s_jax.models.seq2seq.decoding_params`) and reads by token id."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def lookup(table: jax.Array, ids: jax.Array) -> jax.Array:
    """table [vocab, ...], ids [...] int in [0, vocab) -> [..., ...], the rows of ``ids``.

    Clipped rather than bounds-checked: ids are token ids, always in range, and XLA:CPU runs the
    clipped gather twice as fast as ``table[ids]``, which selects a fill value for every element
    (BENCHMARKS.md, "Per-token tables")."""
    return jnp.take(table, ids, axis=0, mode="clip")
