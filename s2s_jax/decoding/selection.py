"""Choosing a decoding step's tokens: the argmax and the top k of every row, exact.

``jnp.argmax`` and ``jax.lax.top_k`` over a [rows, vocab] array are what a decoding step
needs after its generator product, and on XLA:CPU both are slow beside the product: the
argmax is a reduction of (value, index) pairs that XLA:CPU does not vectorise, and top-k
sorts its rows. The functions here give the same results from reductions XLA:CPU does
vectorise, several times faster per step (``python -m benchmarks.selection``; BENCHMARKS.md,
"The same on an AMD EPYC with AVX512-BF16").
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from s2s_jax.models.generator import CHUNK, chunk_maxima, chunked


def _first_index_of(x: jax.Array, best: jax.Array) -> jax.Array:
    """x [rows, n], best [rows, 1] -> [rows] int32, the first index where x equals best (n - 1 if none)."""
    index = jnp.arange(x.shape[-1], dtype=jnp.int32)
    return jnp.min(jnp.where(x == best, index, x.shape[-1] - 1), axis=-1)


def first_argmax(x: jax.Array, chunk: int = CHUNK) -> jax.Array:
    """x [rows, n] -> [rows] int32, the index of each row's first maximum: ``jnp.argmax``'s
    result for input without NaN. The row's maximum comes from the maxima of its chunks of
    ``chunk`` elements; its first index is searched in the first chunk holding it only, so
    no second pass over the row compares every element with the maximum."""
    blocks = chunked(x, chunk)
    maxima = chunk_maxima(blocks)
    best = jnp.max(maxima, axis=-1, keepdims=True)
    first = _first_index_of(maxima, best)
    within = _first_index_of(jnp.take_along_axis(blocks, first[:, None, None], axis=1)[:, 0], best)
    return first * chunk + within


def top_k(x: jax.Array, k: int, chunk: int = CHUNK) -> tuple[jax.Array, jax.Array]:
    """``jax.lax.top_k(x, k)`` for x [rows, n]: (values [rows, k] descending, indices
    [rows, k] int32), ties in index order, the same values and indices.

    The row is cut into chunks of ``chunk`` elements and only the k chunks with the largest
    maxima are searched. They hold the top k: every chunk ranked before the chunk of a
    top-k element e (by maximum, then position) holds an element ranked before e, and
    at most k - 1 elements are. The kept chunks are taken in row order, so ties among
    their elements still resolve by index.
    """
    rows, n = x.shape
    if -(-n // chunk) <= k:
        return jax.lax.top_k(x, k)
    blocks = chunked(x, chunk)
    kept = jnp.sort(jax.lax.top_k(jnp.max(blocks, axis=-1), k)[1], axis=-1)
    candidates = jnp.take_along_axis(blocks, kept[:, :, None], axis=1).reshape(rows, k * chunk)
    values, pos = jax.lax.top_k(candidates, k)
    return values, jnp.take_along_axis(kept, pos // chunk, axis=1) * chunk + pos % chunk
