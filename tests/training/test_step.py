"""The pure train/eval steps: finite gradients, loss against a direct computation,
label smoothing, uniform init, determinism."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s2s_jax.config import Config, ScheduledSamplingConfig, TrainConfig
from s2s_jax.training.losses import sequence_loss
from s2s_jax.training.step import create_train_state, eval_step, loss_and_grads, train_step_fn
from s2s_jax.vocab import PAD_ID
from tests.conftest import random_batch, tiny_model


def _cfg(**train) -> Config:
    return Config(model=tiny_model(cell="gru", attention="additive", dropout=0.1), train=TrainConfig(**train))


def test_gradients_are_finite_and_reach_every_parameter():
    state = create_train_state(_cfg(), jax.random.key(0))
    (loss, _), grads = jax.jit(loss_and_grads)(state, random_batch(4, 6, 5), jax.random.key(1))
    assert np.isfinite(float(loss))
    for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]:
        assert np.all(np.isfinite(g)), path
        assert np.any(g != 0), f"no gradient reaches {jax.tree_util.keystr(path)}"


def test_eval_loss_equals_masked_mean_nll():
    state = create_train_state(_cfg(), jax.random.key(0))
    b = random_batch(4, 6, 5)
    stats = eval_step(state, b)
    logp = state.model.apply({"params": state.params}, b["src"], b["tgt"][:, :-1])
    labels = b["tgt"][:, 1:]
    expected = -sum(float(logp[i, t, labels[i, t]]) for i in range(4) for t in range(labels.shape[1])
                    if labels[i, t] != PAD_ID)
    assert float(stats["nll_sum"]) == pytest.approx(expected, rel=1e-5)
    assert float(stats["tokens"]) == np.sum(labels != PAD_ID)


def test_label_smoothing_mixes_in_the_uniform_term():
    logp = jax.nn.log_softmax(jax.random.normal(jax.random.key(0), (2, 3, 7)))
    labels = jnp.array([[4, 5, 0], [6, 0, 0]])
    plain, _ = sequence_loss(logp, labels)
    smooth, _ = sequence_loss(logp, labels, 0.1)
    mask = np.asarray(labels != 0)
    uniform = float(np.sum(-np.asarray(logp).mean(-1) * mask) / mask.sum())
    assert float(smooth) == pytest.approx(0.9 * float(plain) + 0.1 * uniform, rel=1e-6)


def test_uniform_init_bounds_every_parameter():
    cfg = Config(model=tiny_model(init_scale=0.08))
    params = create_train_state(cfg, jax.random.key(0)).params
    leaves = jax.tree_util.tree_leaves(params)
    assert all(float(jnp.max(jnp.abs(x))) <= 0.08 for x in leaves)
    assert float(jnp.std(jnp.concatenate([x.ravel() for x in leaves]))) == pytest.approx(0.08 / 3 ** 0.5, rel=0.1)


def test_train_step_is_deterministic_and_uses_scheduled_sampling_keys():
    cfg = _cfg(scheduled_sampling=ScheduledSamplingConfig("constant", k=0.5, mode="sample"))
    b = random_batch(4, 6, 5)
    step = jax.jit(train_step_fn)
    s0 = create_train_state(cfg, jax.random.key(0))
    a, ma = step(s0, b, jax.random.key(7))
    c, _ = step(s0, b, jax.random.key(7))
    _, md = step(s0, b, jax.random.key(8))
    assert float(ma["teacher_forcing_prob"]) == pytest.approx(0.5)
    for x, y in zip(jax.tree_util.tree_leaves(a.params), jax.tree_util.tree_leaves(c.params), strict=True):
        np.testing.assert_array_equal(x, y)
    assert float(ma["loss"]) != float(md["loss"])
    assert int(a.step) == 1
