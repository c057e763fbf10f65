"""Scheduled-sampling schedules against Bengio et al. 2015 (sec. 2.4), and the token choice."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s2s_jax.config import ScheduledSamplingConfig
from s2s_jax.models.scheduled_sampling import choose_inputs, teacher_forcing_prob

STEPS = [0, 1, 10, 100, 1000, 5000]


@pytest.mark.parametrize("cfg, formula", [
    (ScheduledSamplingConfig("none"), lambda i: 1.0),
    (ScheduledSamplingConfig("constant", k=0.75), lambda i: 0.75),
    (ScheduledSamplingConfig("linear", k=1.0, c=2e-4, min_prob=0.1), lambda i: max(0.1, 1.0 - 2e-4 * i)),
    (ScheduledSamplingConfig("exponential", k=0.999), lambda i: 0.999 ** i),
    (ScheduledSamplingConfig("inverse_sigmoid", k=500.0), lambda i: 500.0 / (500.0 + math.exp(i / 500.0))),
])
def test_schedules_match_the_paper(cfg, formula):
    for i in STEPS:
        assert float(teacher_forcing_prob(cfg, i)) == pytest.approx(formula(i), rel=1e-4, abs=1e-7)  # float32 powers


def test_probability_one_always_chooses_gold_and_zero_never():
    gold = jnp.arange(64) % 5 + 4
    log_probs = jax.nn.log_softmax(jax.random.normal(jax.random.key(0), (64, 9)))
    own = jnp.argmax(log_probs, -1)
    np.testing.assert_array_equal(choose_inputs(jax.random.key(1), gold, log_probs, 1.0, "argmax"), gold)
    np.testing.assert_array_equal(choose_inputs(jax.random.key(1), gold, log_probs, 0.0, "argmax"), own)


def test_mixing_rate_follows_the_probability():
    gold = jnp.full((20000,), 7)
    log_probs = jnp.log(jnp.full((20000, 9), 1 / 9))
    chosen = choose_inputs(jax.random.key(3), gold, log_probs.at[:, 8].set(0.0), 0.3, "argmax")
    assert float(jnp.mean(chosen == 7)) == pytest.approx(0.3, abs=0.02)
