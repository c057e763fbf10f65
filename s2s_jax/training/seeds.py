"""Many seeds in one program: train states stacked on a leading seed axis and the train step
mapped over it with ``jax.vmap``, so N small models share each matrix product's call (and, on
an accelerator, its chips)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from s2s_jax.training.step import TrainState, train_step_fn


def stack(trees: list[Any]) -> Any:
    """Pytrees of one structure (train states, PRNG keys) -> one with a leading seed axis."""
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def unstack(tree: Any, index: int) -> Any:
    """Seed ``index`` of a pytree with a leading seed axis."""
    return jax.tree_util.tree_map(lambda x: x[index], tree)


def seeds_train_step_fn(states: TrainState, batch: dict[str, jax.Array], keys: jax.Array,
                        batch_per_seed: bool = False) -> tuple[TrainState, dict]:
    """:func:`~s2s_jax.training.step.train_step_fn` of every seed: ``states`` and ``keys`` have a
    leading seed axis, as do the metrics returned; ``batch`` is shared by every seed, or with
    ``batch_per_seed`` has a leading seed axis too ([seeds, rows, len])."""
    return jax.vmap(train_step_fn, in_axes=(0, 0 if batch_per_seed else None, 0))(states, batch, keys)


def step_keys(rngs: jax.Array, step: int) -> jax.Array:
    """Each seed's key of ``step`` [seeds], as a single run folds its key: ``fold_in(rng, step)``."""
    return jax.vmap(jax.random.fold_in, in_axes=(0, None))(rngs, step)
