"""Gradient clipping by the global norm (Pascanu et al. 2013, sec. 3.2): if ||g|| > c, g <- g c / ||g||.

The same transformation as ``optax.clip_by_global_norm`` (to rounding), with the norm's reductions ordered.
Backpropagation produces the largest gradient, the vocabulary layer's kernel, first, while the
recurrent loops' backward passes are still to run. Reduced as soon as it is ready, its sum of
squares ran beside those loops on XLA:CPU and stalled their small per-step products, so the
largest leaf is reduced after the others, whose gradients the loops produce (BENCHMARKS.md).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax


def global_norm(tree: Any) -> jax.Array:
    """sqrt of the sum of squares of every leaf -> [] float32; equals ``optax.tree.norm(tree)``
    up to summation order."""
    leaves = sorted(jax.tree.leaves(tree), key=lambda leaf: leaf.size)
    if not leaves:
        return jnp.zeros((), jnp.float32)
    *rest, largest = (leaf.astype(jnp.float32) for leaf in leaves)
    rest_sum = sum((jnp.sum(jnp.square(leaf)) for leaf in rest), jnp.zeros((), jnp.float32))
    # A sum of squares is never negative, so the select keeps every value (inf and NaN included);
    # it only makes the largest leaf's reduction wait for the others.
    largest = jnp.where(rest_sum < 0.0, 0.0, largest)
    return jnp.sqrt(rest_sum + jnp.sum(jnp.square(largest)))


def clip_by_global_norm(max_norm: float) -> optax.GradientTransformation:
    """Scales the updates by ``max_norm / global_norm`` where that norm exceeds ``max_norm``; an
    empty state, as ``optax.clip_by_global_norm`` has, so checkpoints of either restore alike."""

    def update_fn(updates: Any, state: optax.EmptyState, params: Any = None) -> tuple[Any, optax.EmptyState]:
        del params
        norm = global_norm(updates)
        # One scalar factor, not optax's select of ``u`` or ``(u / norm) * max_norm`` per element
        # (equal to rounding): XLA:CPU wrote each gradient out scaled and selected before Adam's
        # passes read it, and fuses a multiply by a scalar into them (BENCHMARKS.md, "Clipping by
        # one factor").
        scale = jnp.where(norm < max_norm, 1.0, max_norm / norm)
        return jax.tree.map(lambda u: u * scale.astype(u.dtype), updates), state

    return optax.GradientTransformation(optax.init_empty_state, update_fn)
