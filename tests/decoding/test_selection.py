"""The step's token choice against jnp.argmax and jax.lax.top_k: the same values and indices,
ties (rounded values repeat often), -inf entries, whole rows of -inf, and row lengths that
are no multiple of the chunk or the view's depth. The column search alone is checked row by
row: exact wherever it is sure, never unsure without ties, and unsure on the ties that fool it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s2s_jax.decoding.selection import columns_top_k, first_argmax, top_k


def tied_rows(rows: int, n: int, seed: int) -> np.ndarray:
    """Values rounded to whole numbers (many ties), a third of them -inf, one row all -inf."""
    rng = np.random.default_rng(seed)
    x = np.round(rng.standard_normal((rows, n)) * 2).astype(np.float32)
    x[rng.random(x.shape) < 0.3] = -np.inf
    x[0] = -np.inf
    return x


def distinct_rows(rows: int, n: int, seed: int) -> np.ndarray:
    """A permutation of distinct values per row, some of them -inf-free, no ties."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n) for _ in range(rows)]).astype(np.float32)


@pytest.mark.parametrize(("n", "chunk"), [(7, 32), (32, 32), (1000, 32), (1000, 7), (64, 1)])
def test_first_argmax_is_argmax(n, chunk):
    choose = jax.jit(first_argmax, static_argnums=1)
    for seed in range(3):
        for x in (tied_rows(9, n, seed=n + seed), distinct_rows(9, n, seed)):
            np.testing.assert_array_equal(np.asarray(choose(x, chunk)), np.asarray(jnp.argmax(x, axis=-1)))


def test_first_argmax_takes_the_first_of_maxima_in_several_chunks():
    x = np.zeros((3, 200), np.float32)
    x[0, [150, 40, 41]] = 3.0  # the first maximum is in the second chunk, not the last
    x[1, [31, 32]] = 2.0  # at the edge of two chunks
    x[2, 199] = 1.0  # in the padded last chunk
    np.testing.assert_array_equal(np.asarray(first_argmax(jnp.asarray(x))), [40, 31, 199])


@pytest.mark.parametrize(("n", "k", "depth"), [(997, 10, 32), (4000, 3, 32), (1000, 10, 7), (40, 10, 32),
                                               (320, 10, 32)])
def test_top_k_is_lax_top_k(n, k, depth):
    select = jax.jit(top_k, static_argnums=(1, 2))
    search = jax.jit(columns_top_k, static_argnums=(1, 2))
    for seed in range(3):
        for x in (tied_rows(16, n, seed), distinct_rows(16, n, seed)):
            values, indices = select(x, k, depth)
            want_values, want_indices = map(np.asarray, jax.lax.top_k(x, k))
            np.testing.assert_array_equal(np.asarray(values), want_values)
            np.testing.assert_array_equal(np.asarray(indices), want_indices)
            if -(-n // depth) > 2 * k:
                values, indices, unsure = map(np.asarray, search(x, k, depth))
                np.testing.assert_array_equal(values[~unsure], want_values[~unsure])
                np.testing.assert_array_equal(indices[~unsure], want_indices[~unsure])
                assert not unsure[0]  # the row of -inf
        if -(-n // depth) > 2 * k:
            assert not np.any(np.asarray(search(distinct_rows(16, n, seed), k, depth)[2]))


def test_top_k_is_unsure_of_a_tie_of_more_than_k_columns_only():
    x = np.tile(-np.arange(640, dtype=np.float32) / 1000, (4, 1))  # 32 view rows of 20 columns
    x[0, 64:67] = [3.0, 2.0, 1.0]  # the top 3 in one view row
    x[1, 600:603] = 5.0  # ties across the end of the row
    x[2, 0:2] = 5.0  # the 3rd-largest value 4 ends 6 columns: the 6 kept hold 2 of them, and
    x[2, [22, 23, 24, 25, 26, 7]] = 4.0  # its first, 7, is in column 7, not kept
    x[3] = -np.inf
    x[3, [600, 30]] = 1.0  # two finite; the third is the first -inf in the row
    values, indices, unsure = map(np.asarray, columns_top_k(jnp.asarray(x), 3))
    want_values, want_indices = map(np.asarray, jax.lax.top_k(x, 3))
    assert unsure.tolist() == [False, False, True, False]
    np.testing.assert_array_equal(values[~unsure], want_values[~unsure])
    np.testing.assert_array_equal(indices[~unsure], want_indices[~unsure])
    assert want_indices[2].tolist() == [0, 1, 7] and indices[2].tolist() == [0, 1, 22]
    assert want_indices[3].tolist() == [30, 600, 0]
    got_values, got_indices = top_k(jnp.asarray(x), 3)
    np.testing.assert_array_equal(np.asarray(got_values), want_values)
    np.testing.assert_array_equal(np.asarray(got_indices), want_indices)
