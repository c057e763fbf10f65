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


@pytest.mark.parametrize("n", [7, 32, 1000])
def test_first_argmax_is_argmax(n):
    x = tied_rows(9, n, seed=n)
    np.testing.assert_array_equal(np.asarray(jax.jit(first_argmax)(x)), np.asarray(jnp.argmax(x, axis=-1)))


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
