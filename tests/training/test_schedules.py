"""Learning-rate schedules and the plateau bookkeeping."""

from __future__ import annotations

import jax.numpy as jnp
import pytest

from s2s_jax.config import TrainConfig
from s2s_jax.errors import ConfigError
from s2s_jax.training.schedules import after_evaluation, learning_rate_schedule, plateau_schedule


def test_halving_after_epoch_n_every_half_epoch():
    fn = learning_rate_schedule(TrainConfig(optimizer="sgd", learning_rate=0.7, lr_schedule="halving",
                                            halving_start_epoch=5.0), steps_per_epoch=100)
    expected = {0: 0.7, 499: 0.7, 500: 0.35, 549: 0.35, 550: 0.175, 600: 0.0875, 700: 0.7 / 2 ** 5}
    for step, lr in expected.items():
        assert float(fn(step)) == pytest.approx(lr, rel=1e-6)


def test_halving_needs_steps_per_epoch():
    with pytest.raises(ConfigError, match="halving"):
        learning_rate_schedule(TrainConfig(lr_schedule="halving"))


def test_rsqrt_warms_up_then_decays():
    fn = learning_rate_schedule(TrainConfig(learning_rate=1.0, lr_schedule="rsqrt", warmup_steps=100))
    assert float(fn(50)) == pytest.approx(0.5)
    assert float(fn(100)) == pytest.approx(1.0)
    assert float(fn(400)) == pytest.approx(0.5)


def test_linear_warmup_on_constant():
    fn = learning_rate_schedule(TrainConfig(learning_rate=2.0, warmup_steps=4))
    assert [float(fn(i)) for i in range(5)] == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.0])


def test_plateau_lowers_the_factor_after_patience_evaluations():
    cfg = TrainConfig(lr_schedule="plateau", plateau_patience=2, plateau_factor=0.5)
    p = plateau_schedule(cfg).init({"w": jnp.zeros(3)})
    lowered = []
    for loss in [3.0, 2.0, 2.5, 2.1, 1.9, 2.0, 2.0]:
        new = after_evaluation(cfg, p, loss)
        lowered.append(float(new.scale) < float(p.scale))
        p = new
    assert lowered == [False, False, False, True, False, False, True]
    assert float(p.scale) == 0.25 and float(p.best_value) == pytest.approx(1.9)
