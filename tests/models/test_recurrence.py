"""The hand-written backward pass of ``recurrence`` against autodiff of the same scan."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s2s_jax.models.cells import GATES
from s2s_jax.models.recurrence import _scan_forward, recurrence

TIME, BATCH, HIDDEN = 6, 3, 5
# Column b is row b's mask over time: full, a padded tail, and a PAD step in the middle
# (a state carried unchanged across it).
MASK = np.array([[1, 1, 1], [1, 1, 0], [1, 1, 0], [1, 0, 0], [1, 0, 1], [1, 0, 0]], bool)


def _inputs(kind: str):
    keys = iter(jax.random.split(jax.random.key(0), 16))
    gates = len(GATES[kind])
    kernels = tuple(0.5 * jax.random.normal(next(keys), (HIDDEN, HIDDEN)) for _ in range(gates))
    biases = tuple(0.1 * jax.random.normal(next(keys), (HIDDEN,)) for _ in range(gates))
    x_proj = tuple(jax.random.normal(next(keys), (TIME, BATCH, HIDDEN)) for _ in range(gates))
    h0 = jax.random.normal(next(keys), (BATCH, HIDDEN))
    carry0 = (jax.random.normal(next(keys), (BATCH, HIDDEN)), h0) if kind == "lstm" else h0
    return kernels, biases, x_proj, carry0


@pytest.mark.parametrize("kind", sorted(GATES))
def test_backward_pass_equals_autodiff_of_the_scan(kind):
    args = _inputs(kind)
    out_weights = jax.random.normal(jax.random.key(1), (TIME, BATCH, HIDDEN))
    final_weights = jax.random.normal(jax.random.key(2), (BATCH, HIDDEN))
    mask = jnp.asarray(MASK)

    def objective(run):
        def f(kernels, biases, x_proj, carry0):
            carry, ys = run(kernels, biases, x_proj, carry0)
            # Every carry part (an LSTM's c and h) gets its own weight, so each gradient path counts.
            parts = jax.tree_util.tree_leaves(carry)
            final = sum((i + 1) * (part * final_weights).sum() for i, part in enumerate(parts))
            return (ys * out_weights).sum() + final
        return jax.jit(jax.grad(f, argnums=(0, 1, 2, 3)))

    def hand_written(kernels, biases, x_proj, carry0):
        return recurrence(kind, kernels, biases, x_proj, mask, carry0)

    def autodiff(kernels, biases, x_proj, carry0):
        carry, (ys, _) = _scan_forward(kind, kernels, biases, x_proj, mask, carry0)
        return carry, ys

    got = objective(hand_written)(*args)
    want = objective(autodiff)(*args)
    for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
        assert np.any(np.asarray(w) != 0)
        np.testing.assert_allclose(g, w, atol=1e-5, rtol=1e-5)
