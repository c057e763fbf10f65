"""Global-norm clipping against Optax's own transformation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from s2s_jax.training.clipping import clip_by_global_norm, global_norm


def _tree(scale: float) -> dict:
    keys = jax.random.split(jax.random.key(0), 4)
    return {"generator": {"kernel": scale * jax.random.normal(keys[0], (40, 16))},
            "cell": (scale * jax.random.normal(keys[1], (16, 8)), scale * jax.random.normal(keys[2], (8,))),
            "embedding": scale * jax.random.normal(keys[3], (12, 4))}


def test_global_norm_is_optax_tree_norm():
    tree = _tree(0.3)
    assert float(jax.jit(global_norm)(tree)) == pytest.approx(float(optax.tree.norm(tree)), rel=1e-6)
    assert float(global_norm({})) == 0.0


@pytest.mark.parametrize("scale", [0.01, 5.0])
def test_clipping_matches_optax_below_and_above_the_threshold(scale):
    tree = _tree(scale)
    ours, ref = clip_by_global_norm(1.0), optax.clip_by_global_norm(1.0)
    assert ours.init(tree) == ref.init(tree)
    got, _ = jax.jit(ours.update)(tree, ours.init(tree))
    want, _ = ref.update(tree, ref.init(tree))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8), got, want)
    clipped = float(optax.tree.norm(got))
    assert clipped == pytest.approx(min(1.0, float(optax.tree.norm(tree))), rel=1e-5)


def test_clipping_scales_every_leaf_by_one_scalar():
    """No per-element select: a gradient times one factor, which XLA fuses into Adam's passes."""
    tree = _tree(3.0)
    clip = clip_by_global_norm(1.0)
    jaxpr = jax.make_jaxpr(clip.update)(tree, clip.init(tree)).jaxpr
    producers = {id(v): e for e in jaxpr.eqns for v in e.outvars}
    for out in jaxpr.outvars:
        e = producers[id(out)]
        assert e.primitive.name == "mul"
        assert sorted(v.aval.shape == () for v in e.invars) == [False, True]


@pytest.mark.parametrize("bad", [jnp.inf, jnp.nan])
def test_non_finite_gradients_as_optax_treats_them(bad):
    tree = _tree(0.3)
    tree["cell"] = (tree["cell"][0].at[0, 0].set(bad), tree["cell"][1])
    ours, ref = clip_by_global_norm(1.0), optax.clip_by_global_norm(1.0)
    assert np.isnan(float(global_norm(tree))) == np.isnan(float(optax.tree.norm(tree)))
    got, _ = jax.jit(ours.update)(tree, ours.init(tree))
    want, _ = ref.update(tree, ref.init(tree))
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), got, want)
