"""Scheduled sampling (Bengio et al. 2015).

During training, the decoder input at step t is the gold token y_{t-1} with
probability eps_i (the teacher-forcing probability at training step i), else
the model's own prediction from step t-1. eps_i decays over training (sec. 2.4):
  linear:          eps_i = max(eps, k - c i)
  exponential:     eps_i = k^i,             k < 1
  inverse sigmoid: eps_i = k / (k + exp(i / k)),   k >= 1
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from s2s_jax.config import ScheduledSamplingConfig


def teacher_forcing_prob(cfg: ScheduledSamplingConfig, step: jax.Array | int) -> jax.Array:
    """eps_i at training step ``step`` (float32 scalar); 1.0 when the schedule is ``none``."""
    i = jnp.asarray(step, jnp.float32)
    if cfg.schedule == "none":
        eps = jnp.ones_like(i)
    elif cfg.schedule == "constant":
        eps = jnp.full_like(i, cfg.k)
    elif cfg.schedule == "linear":
        eps = jnp.maximum(cfg.min_prob, cfg.k - cfg.c * i)
    elif cfg.schedule == "exponential":
        eps = jnp.power(cfg.k, i)
    else:  # inverse_sigmoid
        eps = cfg.k / (cfg.k + jnp.exp(i / cfg.k))
    return jnp.clip(jnp.maximum(eps, cfg.min_prob), 0.0, 1.0)


def choose_inputs(key: jax.Array, gold: jax.Array, prev_log_probs: jax.Array, prob: jax.Array,
                  mode: str) -> jax.Array:
    """Per row, the gold token with probability ``prob``, else the model's token.

    gold: [batch] int; prev_log_probs: [batch, vocab] the model's distribution at
    the previous step; mode: "argmax" or "sample" (from that distribution).
    """
    coin_key, sample_key = jax.random.split(key)
    if mode == "sample":
        own = jax.random.categorical(sample_key, prev_log_probs, axis=-1)
    else:
        own = jnp.argmax(prev_log_probs, axis=-1)
    use_gold = jax.random.uniform(coin_key, gold.shape) < prob
    return jnp.where(use_gold, gold, own.astype(gold.dtype))
