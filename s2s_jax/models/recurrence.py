"""A recurrent layer over a whole sequence, with a hand-written backward pass.

``recurrence(kind, kernels, biases, x_proj, mask, carry0)`` runs a cell over
time given the input projections of every step. Its result equals scanning
the cell; its gradient is computed differently from what autodiff of the scan
would do. The backward scan computes only the per-step gate gradients and the
gradient flowing into the previous state (one ``[batch, gates*hidden] x
[gates*hidden, hidden]`` product per step); the recurrent weight gradients are
then ONE matmul over all steps, ``H_prev^T @ dG`` with ``[time*batch]`` as the
contracted dimension, instead of a small accumulation inside every step. On
a CPU the big matmul runs near peak and the small ones do not. All products run in
the kernels' dtype through :mod:`s2s_jax.models.matmul` (bfloat16 x bfloat16 ->
float32 on the matrix units).

Shapes (time-major): x_proj: per gate [time, batch, hidden]; mask: [time, batch]
(False at PAD: the state is carried unchanged); kernels: per gate [hidden, hidden];
biases: per gate [hidden]; carry0: [batch, hidden] (LSTM: (c, h)).
Gate formulas are :func:`s2s_jax.models.cells.cell_forward`; the backward pass
below is their derivative, checked against autodiff in the tests. The forward
pass adds the recurrent biases to the projections before its loop
(:func:`~s2s_jax.models.cells.fold_biases`) and writes each gate's activation,
which the backward pass reads, over its projection's step. The backward pass
writes its gate gradients as the products read them, rounded to the compute
dtype: the weight gradients are the same, and the biases' are sums of the
rounded gate gradients (as the vocabulary layer's bias gradient is). The LSTM's
and RNN's previous hidden states, which only the weight gradients read, are
kept rounded to the compute dtype too.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from s2s_jax.models.cells import Carry, Gates, cell_forward, fold_biases, hidden_of
from s2s_jax.models.matmul import dot, dot_tn


def _backward_step(kind: str, kernels: Gates, dtype, d_carry: Carry, dy: jax.Array, m: jax.Array, res):
    """Gradient of one step: (d previous carry, gate gradients of the input projection, the
    GRU's candidate gradient after its reset gate (None for other cells)), all [batch, hidden].
    The recurrent projection's gate gradients are :func:`_recurrent_gate_grads` of the last two."""
    keep = m[:, None].astype(dy.dtype)
    acts, others = res
    if kind == "gru":
        (r, z, n), (h_prev, hn) = acts, others
        dh = (d_carry + dy) * keep
        dn = dh * (1.0 - z)
        da_n = dn * (1.0 - n * n)
        da_z = dh * (h_prev - n) * z * (1.0 - z)
        da_r = da_n * hn * r * (1.0 - r)
        d_hn = da_n * r
        d_in = (da_r, da_z, da_n)
        d_prev = (d_carry + dy) * (1.0 - keep) + dh * z
    elif kind == "lstm":
        (i, f, g, o), (h_prev, c_prev, tc) = acts, others
        dc_next, dh_next = d_carry
        dh = (dh_next + dy) * keep
        dc = dc_next * keep + dh * o * (1.0 - tc * tc)
        d_in = (dc * g * i * (1.0 - i), dc * c_prev * f * (1.0 - f), dc * i * (1.0 - g * g),
                dh * tc * o * (1.0 - o))
        d_hn = None
        d_prev_c = dc_next * (1.0 - keep) + dc * f
        d_prev = (d_prev_c, (dh_next + dy) * (1.0 - keep))
    else:
        (h_new,) = acts
        dh = (d_carry + dy) * keep
        d_in, d_hn = (dh * (1.0 - h_new * h_new),), None
        d_prev = (d_carry + dy) * (1.0 - keep)
    d_rec = _recurrent_gate_grads(d_in, d_hn)
    d_h_prev = sum(dot(d, k, dtype, transpose_w=True) for d, k in zip(d_rec, kernels, strict=True))
    d_prev = (d_prev[0], d_prev[1] + d_h_prev) if kind == "lstm" else d_prev + d_h_prev
    return d_prev, d_in, d_hn


def _recurrent_gate_grads(d_in: Gates, d_hn: jax.Array | None) -> Gates:
    """The recurrent projection's gate gradients: the input projection's, but for the GRU's
    candidate, which its reset gate scales (``r * h_n``). Only that one is a loop output, so
    the backward scan writes no copy of the others."""
    return d_in if d_hn is None else (*d_in[:2], d_hn)


def _as_bits(x: jax.Array) -> jax.Array:
    """A 16-bit float array as its bits (uint16), other arrays unchanged: how a scan's stacked
    output of bfloat16 travels. XLA:CPU updates a bfloat16 buffer by converting all of it to
    float32 and back at every step (BENCHMARKS.md, "Gate gradients in bfloat16"); an integer
    one it updates in place."""
    return jax.lax.bitcast_convert_type(x, jnp.uint16) if x.dtype.itemsize == 2 else x


def _from_bits(x: jax.Array, dtype) -> jax.Array:
    """The inverse of :func:`_as_bits` for arrays of ``dtype``."""
    return jax.lax.bitcast_convert_type(x, dtype) if x.dtype != dtype else x


# Cells whose derivative reads the previous hidden state only in the weight gradient's product, so
# the forward pass keeps it rounded to the compute dtype (the GRU's update gate reads it too).
_H_PREV_ROUNDED = ("lstm", "rnn")


def _scan_forward(kind, kernels, biases, x_proj, mask, carry0, dtype=jnp.float32, residuals=True):
    """(final carry, outputs [time, batch, hidden], residuals): the residuals are the cell's
    (activations, others), each [time, batch, hidden], or empty ones without ``residuals``."""
    kernels = tuple(k.astype(dtype) for k in kernels)  # once, not at every step
    # The biases added once, outside the loop: inside it each gate's exp or tanh also read its
    # bias per column, which XLA:CPU runs slower (BENCHMARKS.md, "Activations over their
    # projections").
    x_proj, biases = fold_biases(kind, biases, tuple(v.astype(jnp.float32) for v in x_proj))

    def body(state, inputs):
        carry, xs = state
        t, m = inputs
        x = tuple(jax.lax.dynamic_index_in_dim(v, t, keepdims=False) for v in xs)
        carry, (acts, others) = cell_forward(kind, kernels, biases, carry, x, keep=m, dtype=dtype)
        if not residuals:
            return (carry, xs), (hidden_of(kind, carry), ())
        # Each gate's activation overwrites the step of its projection that was just read: as a
        # scan output it would be a new buffer, which XLA zero-fills before the loop.
        xs = tuple(jax.lax.dynamic_update_index_in_dim(v, a, t, 0) for v, a in zip(xs, acts, strict=True))
        if kind in _H_PREV_ROUNDED:
            others = (_as_bits(others[0].astype(dtype)), *others[1:])
        return (carry, xs), (hidden_of(kind, carry), others)

    steps = jnp.arange(mask.shape[0])
    (carry, acts), (ys, others) = jax.lax.scan(body, (carry0, x_proj), (steps, mask))
    return carry, ys, (acts if residuals else (), others)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 6))
def recurrence(kind: str, kernels: Gates, biases: Gates, x_proj: Gates, mask: jax.Array,
               carry0: Carry, dtype: str = "float32") -> tuple[Carry, jax.Array]:
    """(final carry, outputs [time, batch, hidden]) of a ``kind`` cell run over time, its
    products computed in ``dtype``."""
    carry, ys, _ = _scan_forward(kind, kernels, biases, x_proj, mask, carry0, dtype, residuals=False)
    return carry, ys


def _recurrence_fwd(kind, kernels, biases, x_proj, mask, carry0, dtype):
    carry, ys, res = _scan_forward(kind, kernels, biases, x_proj, mask, carry0, dtype)
    return (carry, ys), (kernels, mask, res)


def _recurrence_bwd(kind, dtype, saved, grads):
    kernels, mask, (acts, others) = saved
    low = jnp.dtype(dtype)
    if kind in _H_PREV_ROUNDED:
        others = (_from_bits(others[0], low), *others[1:])
    d_final, d_ys = grads
    kernels_c = tuple(k.astype(low) for k in kernels)

    def body(d_carry, inputs):
        dy, m, a, o = inputs
        d_carry, d_in, d_hn = _backward_step(kind, kernels_c, dtype, d_carry, dy, m, (a, o))
        # The gate gradients as this step's products read them. Written in float32 as well, XLA
        # computed each gate's gradient twice, once for each write.
        return d_carry, jax.tree_util.tree_map(lambda d: _as_bits(d.astype(low)), (d_in, d_hn))

    d_carry0, bits = jax.lax.scan(body, d_final, (d_ys, mask, acts, others), reverse=True)
    d_x, d_hn = jax.tree_util.tree_map(lambda b: _from_bits(b, low), bits)
    d_rec = _recurrent_gate_grads(d_x, d_hn)
    h_prev = others[0]
    flat_h = h_prev.reshape(-1, h_prev.shape[-1])
    d_kernels = tuple(dot_tn(flat_h, d.reshape(-1, d.shape[-1]), dtype) for d in d_rec)
    d_biases = tuple(d.astype(jnp.float32).sum(axis=(0, 1)) for d in d_rec)
    return d_kernels, d_biases, tuple(d.astype(jnp.float32) for d in d_x), None, d_carry0


recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)
