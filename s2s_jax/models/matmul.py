"""Matrix products in the model's compute dtype, and the dense layer built on them.

``ModelConfig.dtype="bfloat16"`` means bfloat16 x bfloat16 -> float32 matmuls: the
inputs are rounded to bfloat16, the products accumulate and come out in float32, and
parameters stay float32. That is what the CPU's matrix units (AMX, AVX512-BF16) and
accelerators run fastest, and it is *only* what XLA:CPU runs on them. XLA:CPU hands a
dot to its bfloat16 library kernels (YNNPACK) only when (BENCHMARKS.md, "Why bfloat16 was
slower than float32"):

- its result is float32: a bfloat16 x bfloat16 -> bfloat16 dot (what ``jnp.dot`` of two
  bfloat16 arrays, and so ``flax.linen.Dense(dtype=bfloat16)``, gives) is converted to a
  float32 dot and runs at the float32 rate, plus the converts;
- its left operand is ``[m, k]`` with ``k`` minor in memory. A weight gradient
  ``x^T @ dy`` contracts the left operand's *major* dimension, and XLA folds a
  ``transpose`` into the dot (or gives it a layout that makes it free), so such a dot is
  converted to float32 too. :func:`materialized_transpose` makes the transposed copy
  real, behind an optimisation barrier;
- neither ``m`` nor ``n`` is 1 (matrix-vector products are not library calls at all).

:func:`dot` is the one place these rules are kept: forward ``x @ w`` and its backward
pass ``dx = dy @ w^T`` and ``dw = x^T @ dy`` all run bfloat16 x bfloat16 -> float32.
In float32 it is plain ``jnp.dot``.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

F32 = jnp.float32


# Rows of ``a`` that :func:`materialized_transpose` copies at a time when it copies by blocks.
TRANSPOSE_BLOCK_ROWS = 256


def _copied(a: jax.Array) -> jax.Array:
    """``a`` [r, c] as a row-major copy: flattening behind a barrier, which XLA cannot fold into
    the consumer the way it folds a transpose (a layout change) into a dot."""
    return lax.optimization_barrier(a.reshape(-1)).reshape(a.shape)


def materialized_transpose(a: jax.Array) -> jax.Array:
    """``a.T`` [k, m] of ``a`` [m, k], laid out row-major in memory.

    XLA:CPU's transposing copy slows several-fold when ``m`` is not a power of two and the rows
    are long (bfloat16 [3072, 512]: 4.9 ms, [3072, 1024]: 12.1 ms, against 1.2 and 2.4 ms for
    4096 rows; ``benchmarks/transpose.py``, BENCHMARKS.md "Transposes by blocks of rows"). Then
    blocks of ``TRANSPOSE_BLOCK_ROWS`` rows are transposed apart and joined side by side (2.2 and
    3.9 ms).
    """
    m, k = a.shape
    if m <= TRANSPOSE_BLOCK_ROWS or m & (m - 1) == 0 or k < 512:
        return _copied(a.T)
    blocks = [_copied(a[i:i + TRANSPOSE_BLOCK_ROWS].T) for i in range(0, m, TRANSPOSE_BLOCK_ROWS)]
    return _copied(jnp.concatenate(blocks, axis=1))


def _mixed(a: jax.Array, b: jax.Array, contract_b: int) -> jax.Array:
    """a [m, k] times b ([k, n] with contract_b=0, [n, k] with 1) -> [m, n] float32."""
    return lax.dot_general(a, b, (((1,), (contract_b,)), ((), ())), preferred_element_type=F32)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _low_precision_dot(x: jax.Array, w: jax.Array, dtype: Any, transpose_w: bool) -> jax.Array:
    y = _mixed(x.reshape(-1, x.shape[-1]).astype(dtype), w.astype(dtype), 1 if transpose_w else 0)
    return y.reshape(*x.shape[:-1], y.shape[-1])


def _low_precision_dot_fwd(x, w, dtype, transpose_w):
    return _low_precision_dot(x, w, dtype, transpose_w), (x, w)


def _low_precision_dot_bwd(dtype, transpose_w, saved, g):
    x, w = saved
    x2 = x.reshape(-1, x.shape[-1])
    g2 = g.reshape(-1, g.shape[-1]).astype(dtype)
    dx = _mixed(g2, w.astype(dtype), 0 if transpose_w else 1).reshape(x.shape)  # dy @ w^T
    dw = dot_tn(g2, x2, dtype) if transpose_w else dot_tn(x2, g2, dtype)
    return dx.astype(x.dtype), dw.astype(w.dtype)


_low_precision_dot.defvjp(_low_precision_dot_fwd, _low_precision_dot_bwd)


def dot(x: jax.Array, w: jax.Array, dtype: Any = F32, transpose_w: bool = False) -> jax.Array:
    """x [..., k] @ w [k, n] (``transpose_w``: w [n, k], x @ w^T) -> [..., n] in float32,
    computed in ``dtype``.

    With a float32 ``dtype`` this is ``jnp.dot`` in float32; with bfloat16 the inputs are
    rounded to bfloat16 and every product of the forward and backward pass accumulates
    in float32 on the matrix units. Pass a transposed matrix with ``transpose_w``, not as
    ``w.T``: a transposed operand's layout is column-major, which YNNPACK refuses.
    """
    if jnp.dtype(dtype) == F32:
        return jnp.dot(x.astype(F32), (w.T if transpose_w else w).astype(F32))
    return _low_precision_dot(x, w, jnp.dtype(dtype), transpose_w)


def dot_tn(a: jax.Array, b: jax.Array, dtype: Any = F32) -> jax.Array:
    """a^T @ b for a [m, k], b [m, n] -> [k, n] float32: the weight gradient's contraction over
    the rows (time and batch), in ``dtype``."""
    if jnp.dtype(dtype) == F32:
        return jnp.dot(a.astype(F32).T, b.astype(F32))
    return _mixed(materialized_transpose(a.astype(dtype)), b.astype(dtype), 0)


class Dense(nn.Module):
    """``x @ kernel (+ bias)`` with float32 parameters and output, the product in ``dtype``.

    Parameters are named and initialised as ``flax.linen.Dense``'s (``kernel`` [in, out],
    lecun normal; ``bias`` [out], zeros).
    """

    features: int
    use_bias: bool = True
    dtype: Any = F32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """x [..., in] -> [..., features] float32."""
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.features))
        y = dot(x, kernel, self.dtype)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,))
        return y
