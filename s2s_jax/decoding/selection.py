"""Choosing a decoding step's tokens: the argmax and the top k of every row, exact (greedy
decoding's argmax, sampling's top-k filter, beam search's best extensions).

``jnp.argmax`` and ``jax.lax.top_k`` over a [rows, vocab] array are what a decoding step
needs after its generator product, and on XLA:CPU both are slow beside the product: the
argmax is a reduction of (value, index) pairs that XLA:CPU does not vectorise, and top-k
sorts its rows. The functions here take the maxima of pieces of the row, which XLA:CPU
vectorises, and search only the pieces that hold the answer: :func:`first_argmax` cuts the row
into chunks of consecutive elements, the top k searches the columns of the row's
:func:`~s2s_jax.models.generator.strided` view, whose maxima XLA:CPU computes at memory speed
(``python -m benchmarks.selection``; BENCHMARKS.md, "Strided reductions").

The columns of that view are not runs of consecutive elements, so a tie between columns does
not say which of them holds the first of the tied elements. Twice as many columns as needed are
searched, so only a tie of more than k columns can hide an element of the answer; a row where
one might (a rare event for a model's scores, not for rounded values) makes the step fall back
to ``jax.lax.top_k`` for all its rows, which gives the same result the slow way.
:func:`columns_top_k` is the search without that fallback, with each row's flag.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from s2s_jax.models.generator import DEPTH, column_indices, column_maxima, strided

Gather = Callable[[jax.Array], tuple[jax.Array, jax.Array]]


def _first_index_of(x: jax.Array, best: jax.Array) -> jax.Array:
    """x [rows, n], best [rows, 1] -> [rows] int32, the first index where x equals best (n - 1 if none)."""
    index = jnp.arange(x.shape[-1], dtype=jnp.int32)
    return jnp.min(jnp.where(x == best, index, x.shape[-1] - 1), axis=-1)


def first_argmax(x: jax.Array, chunk: int = 32) -> jax.Array:
    """x [rows, n] -> [rows] int32, the index of each row's first maximum: ``jnp.argmax``'s
    result for input without NaN. The row's maximum comes from the maxima of its chunks of
    ``chunk`` consecutive elements; its first index is searched in the first chunk holding it.

    Chunks of consecutive elements, not the :func:`strided` view's columns: greedy decoding's
    argmax reads logits with the EOS constraint applied, which XLA:CPU fuses into this
    reduction, and it compiles that fusion well over consecutive chunks and poorly over the
    columns (BENCHMARKS.md, "Strided reductions")."""
    n = x.shape[-1]
    blocks = jnp.pad(x, [(0, 0), (0, -n % chunk)], constant_values=-jnp.inf).reshape(x.shape[0], -1, chunk)
    # The barrier keeps XLA from fusing the two maxima into one over the row, which it runs slower.
    maxima = jax.lax.optimization_barrier(jnp.max(blocks, axis=-1))
    best = jnp.max(maxima, axis=-1, keepdims=True)
    first = _first_index_of(maxima, best)
    within = _first_index_of(jnp.take_along_axis(blocks, first[:, None, None], axis=1)[:, 0], best)
    return first * chunk + within


def search_columns(maxima: jax.Array, gather: Gather, k: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The top k of rows known by their :func:`strided` view's column maxima [rows, columns]
    (more than 2k columns) -> (values [rows, k], indices [rows, k] int32, unsure [rows] bool):
    ``jax.lax.top_k`` of each row where ``unsure`` is False. ``gather(kept [rows, m])`` gives
    the elements of the ``m`` columns ``kept`` (ascending) and their indices in the row,
    ([rows, ..., m], [rows, ..., m]), in index order when flattened.

    Only the 2k columns with the largest maxima are searched (of equal maxima, the first
    columns). Their maxima are 2k elements, so the row's k-th largest value v is at least the
    smallest of them, and every column not kept has its maximum at most that: every element above
    v is in a kept column. The kept columns' elements are in index order, so ties among them
    resolve by index. The result is exact unless a column not kept also reaches v (it might hold
    an earlier element equal to v), which takes k + 2 columns whose maxima all equal v:
    ``unsure``. When fewer than k elements are finite, the -inf that complete the k are the row's
    first -inf, among its first k elements, which are the first elements of its first k columns;
    at most k - 1 columns hold a finite element, so those k columns are among the 2k kept.
    """
    rows = maxima.shape[0]
    kept = jnp.sort(jax.lax.top_k(maxima, 2 * k)[1], axis=-1)
    candidates, index = gather(kept)
    values, pos = jax.lax.top_k(candidates.reshape(rows, -1), k)
    indices = jnp.take_along_axis(index.reshape(rows, -1), pos, axis=1)
    # The k-th value as a reduction, not a slice: XLA:CPU's TopK kernel replaces a sort only
    # when every use of its result is the top k slice.
    kth = jnp.min(values, axis=-1, keepdims=True)
    unsure = (jnp.sum(maxima >= kth, axis=-1) > 2 * k) & (kth[:, 0] > -jnp.inf)
    return values, indices, unsure


def columns_top_k(x: jax.Array, k: int, depth: int = DEPTH) -> tuple[jax.Array, jax.Array, jax.Array]:
    """x [rows, n] with more than 2k :func:`strided` columns -> (values [rows, k], indices
    [rows, k] int32, unsure [rows] bool): ``jax.lax.top_k(x, k)`` where ``unsure`` is False
    (:func:`search_columns`)."""
    view = strided(x, depth)
    columns = view.shape[-1]

    def gather(kept):
        return jnp.take_along_axis(view, kept[:, None, :], axis=2), column_indices(kept, columns, depth)

    return search_columns(column_maxima(view), gather, k)


def top_k(x: jax.Array, k: int, depth: int = DEPTH) -> tuple[jax.Array, jax.Array]:
    """``jax.lax.top_k(x, k)`` for x [rows, n]: (values [rows, k] descending, indices
    [rows, k] int32), ties in index order, the same values and indices; from
    :func:`columns_top_k` unless a row is unsure."""
    if -(-x.shape[-1] // depth) <= 2 * k:
        return jax.lax.top_k(x, k)
    values, indices, unsure = columns_top_k(x, k, depth)
    return jax.lax.cond(jnp.any(unsure), lambda: tuple(jax.lax.top_k(x, k)), lambda: (values, indices))
