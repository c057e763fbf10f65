"""The step's token choice against jnp.argmax and jax.lax.top_k: the same values and indices,
ties (rounded values repeat often), -inf entries, whole rows of -inf, and row lengths that
are no multiple of the chunk."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s2s_jax.decoding.selection import first_argmax, top_k


def tied_rows(rows: int, n: int, seed: int) -> np.ndarray:
    """Values rounded to whole numbers (many ties), a third of them -inf, one row all -inf."""
    rng = np.random.default_rng(seed)
    x = np.round(rng.standard_normal((rows, n)) * 2).astype(np.float32)
    x[rng.random(x.shape) < 0.3] = -np.inf
    x[0] = -np.inf
    return x


@pytest.mark.parametrize(("n", "chunk"), [(7, 32), (32, 32), (1000, 32), (1000, 7), (64, 1)])
def test_first_argmax_is_argmax(n, chunk):
    choose = jax.jit(first_argmax, static_argnums=1)
    for seed in range(3):
        x = tied_rows(9, n, seed=n + seed)
        np.testing.assert_array_equal(np.asarray(choose(x, chunk)), np.asarray(jnp.argmax(x, axis=-1)))


def test_first_argmax_takes_the_first_of_maxima_in_several_chunks():
    x = np.zeros((3, 200), np.float32)
    x[0, [150, 40, 41]] = 3.0  # the first maximum is in the second chunk, not the last
    x[1, [31, 32]] = 2.0  # at the edge of two chunks
    x[2, 199] = 1.0  # in the padded last chunk
    np.testing.assert_array_equal(np.asarray(first_argmax(jnp.asarray(x))), [40, 31, 199])


@pytest.mark.parametrize(("n", "k", "chunk"), [(997, 10, 32), (4000, 3, 32), (1000, 10, 7), (40, 10, 32),
                                               (320, 10, 32)])
def test_top_k_is_lax_top_k(n, k, chunk):
    select = jax.jit(top_k, static_argnums=(1, 2))
    for seed in range(3):
        x = tied_rows(16, n, seed)
        values, indices = select(x, k, chunk)
        want_values, want_indices = jax.lax.top_k(x, k)
        np.testing.assert_array_equal(np.asarray(values), np.asarray(want_values))
        np.testing.assert_array_equal(np.asarray(indices), np.asarray(want_indices))


def test_top_k_finds_a_top_crowded_into_one_chunk():
    x = np.zeros((2, 640), np.float32)
    x[0, 64:74] = np.arange(10, 0, -1)  # all of the top 10 in one chunk of 32
    x[1, 600:603] = 5.0  # ties across the end of the row
    values, indices = top_k(jnp.asarray(x), 10)
    want_values, want_indices = jax.lax.top_k(x, 10)
    np.testing.assert_array_equal(np.asarray(values), np.asarray(want_values))
    np.testing.assert_array_equal(np.asarray(indices), np.asarray(want_indices))
