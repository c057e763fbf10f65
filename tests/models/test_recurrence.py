"""``recurrence`` (its biases folded, its residuals written over its inputs, its hand-written
backward pass) against autodiff of a plain scan of the cell."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s2s_jax.models.cells import GATES, cell_forward, hidden_of
from s2s_jax.models.recurrence import recurrence

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
        def step(carry, inputs):
            x, m = inputs
            carry, _ = cell_forward(kind, kernels, biases, carry, x, keep=m)
            return carry, hidden_of(kind, carry)
        return jax.lax.scan(step, carry0, (x_proj, mask))

    for g, w in zip(jax.tree_util.tree_leaves(jax.jit(hand_written)(*args)),
                    jax.tree_util.tree_leaves(jax.jit(autodiff)(*args)), strict=True):
        np.testing.assert_allclose(g, w, atol=1e-6, rtol=1e-6)
    got = objective(hand_written)(*args)
    want = objective(autodiff)(*args)
    for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
        assert np.any(np.asarray(w) != 0)
        np.testing.assert_allclose(g, w, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", sorted(GATES))
def test_forward_scan_writes_the_activations_over_the_projections(kind):
    """The forward pass writes each gate's activation over its input projection (a loop carry):
    its only stacked outputs are the hidden states and the other residuals, since XLA
    zero-fills each stacked output's buffer before the loop."""
    kernels, biases, x_proj, carry0 = _inputs(kind)
    mask = jnp.asarray(MASK)

    def forward(*args):
        return jax.vjp(lambda k, b, x, c: recurrence(kind, k, b, x, mask, c), *args)[0]

    eqns = jax.make_jaxpr(forward)(kernels, biases, x_proj, carry0).jaxpr.eqns
    (scan,) = [e for e in eqns if e.primitive.name == "scan"]
    others = {"rnn": 1, "gru": 2, "lstm": 3}[kind]
    assert scan.params["num_carry"] == len(jax.tree_util.tree_leaves(carry0)) + len(GATES[kind])
    assert len(scan.outvars) - scan.params["num_carry"] == 1 + others


def _bfloat16_gradients(kind, run):
    args = _inputs(kind)
    mask = jnp.asarray(MASK)
    out_weights = jax.random.normal(jax.random.key(1), (TIME, BATCH, HIDDEN))

    def f(kernels, biases, x_proj, carry0):
        carry, ys = run(kernels, biases, x_proj, mask, carry0)
        return (ys * out_weights).sum() + sum(part.sum() for part in jax.tree_util.tree_leaves(carry))

    return jax.jit(jax.grad(f, argnums=(0, 1, 2, 3)))(*args)


@pytest.mark.parametrize("kind", sorted(GATES))
def test_bfloat16_backward_pass_rounds_the_gate_gradients_only(kind):
    """In bfloat16 the backward pass keeps its gate gradients as the products read them, rounded
    to bfloat16: the kernels' and the initial state's gradients are autodiff's (whose products
    round the same values), the projections' are autodiff's rounded to bfloat16, and the biases'
    are sums of rounded values, within bfloat16's rounding of autodiff's."""
    def hand_written(kernels, biases, x_proj, mask, carry0):
        return recurrence(kind, kernels, biases, x_proj, mask, carry0, "bfloat16")

    def autodiff(kernels, biases, x_proj, mask, carry0):
        def step(carry, inputs):
            x, m = inputs
            carry, _ = cell_forward(kind, kernels, biases, carry, x, keep=m, dtype=jnp.bfloat16)
            return carry, hidden_of(kind, carry)
        return jax.lax.scan(step, carry0, (x_proj, mask))

    (dk, db, dx, dc), (wk, wb, wx, wc) = _bfloat16_gradients(kind, hand_written), _bfloat16_gradients(kind, autodiff)
    for g, w in zip(jax.tree_util.tree_leaves((dk, dc)), jax.tree_util.tree_leaves((wk, wc)), strict=True):
        np.testing.assert_allclose(g, w, atol=1e-5, rtol=1e-5)
    for g, w in zip(dx, wx, strict=True):
        g = np.asarray(g)
        np.testing.assert_array_equal(g, np.asarray(jnp.asarray(g).astype(jnp.bfloat16).astype(jnp.float32)))
        np.testing.assert_allclose(g, w, atol=1e-6, rtol=2.0 ** -8)
    for g, w in zip(db, wb, strict=True):
        np.testing.assert_allclose(g, w, atol=2.0 ** -7 * float(np.max(np.abs(w))), rtol=2.0 ** -7)


def _bfloat16_stacked_outputs(kind, reverse):
    """The dtypes of the stacked outputs of the forward (or, ``reverse``, the backward) scan in
    the jaxpr of a bfloat16 recurrence's gradient."""
    kernels, biases, x_proj, carry0 = _inputs(kind)
    mask = jnp.asarray(MASK)

    def loss(x_proj):
        return recurrence(kind, kernels, biases, x_proj, mask, carry0, "bfloat16")[1].sum()

    eqns = jax.make_jaxpr(jax.grad(loss))(x_proj).jaxpr.eqns
    (scan,) = [e for e in eqns if e.primitive.name == "scan" and e.params["reverse"] == reverse]
    return [v.aval.dtype for v in scan.outvars[scan.params["num_carry"]:]]


@pytest.mark.parametrize("kind", sorted(GATES))
def test_bfloat16_backward_scan_writes_the_gate_gradients_as_bits(kind):
    """The backward scan's stacked outputs are the bfloat16 gate gradients' bits (uint16):
    XLA:CPU updates a bfloat16 buffer in a loop by converting all of it to float32 and back at
    every step, an integer one in place."""
    stacked = _bfloat16_stacked_outputs(kind, reverse=True)
    assert len(stacked) == len(GATES[kind]) + (kind == "gru")
    assert set(stacked) == {jnp.dtype(jnp.uint16)}


@pytest.mark.parametrize("kind", sorted(GATES))
def test_bfloat16_forward_scan_keeps_the_previous_state_as_bits(kind):
    """In bfloat16 the forward scan writes the LSTM's and RNN's previous hidden state, which only
    the weight gradient reads (rounded), as bfloat16 bits; the GRU's, which its update gate's
    gradient reads, stays float32, as do the outputs and the other residuals."""
    ys, h_prev, *rest = _bfloat16_stacked_outputs(kind, reverse=False)
    assert h_prev == (jnp.float32 if kind == "gru" else jnp.uint16)
    assert {ys, *rest} == {jnp.dtype(jnp.float32)}
