"""Masked token-level cross-entropy, with optional label smoothing (Szegedy et al. 2016)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from s2s_jax.vocab import PAD_ID


def token_stats(log_probs: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
    """Sums over the real (non-PAD) labels: negative log-likelihood, token count, correct argmax.

    log_probs: [batch, time, vocab]; labels: [batch, time].
    """
    mask = labels != PAD_ID
    nll = -jnp.take_along_axis(log_probs, labels[..., None], axis=-1)[..., 0]
    correct = (jnp.argmax(log_probs, axis=-1) == labels) & mask
    return {
        "nll_sum": jnp.sum(nll * mask),
        "tokens": jnp.sum(mask).astype(jnp.float32),
        "correct": jnp.sum(correct).astype(jnp.float32),
    }


def loss_from_token_terms(loss: jax.Array, nll: jax.Array, correct: jax.Array,
                          labels: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """:func:`sequence_loss` from per-token terms [batch, time] (``Seq2Seq.token_losses``),
    which hold the same values without the [batch, time, vocab] log-probabilities."""
    mask = labels != PAD_ID
    stats = {"nll_sum": jnp.sum(nll * mask), "tokens": jnp.sum(mask).astype(jnp.float32),
             "correct": jnp.sum(correct * mask)}
    return jnp.sum(loss * mask) / jnp.maximum(stats["tokens"], 1.0), stats


def sequence_loss(log_probs: jax.Array, labels: jax.Array,
                  label_smoothing: float = 0.0) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Mean per-token loss over the batch's real labels, and :func:`token_stats`.

    With smoothing eps the target is (1 - eps) on the label and eps spread
    uniformly over the vocabulary.
    """
    stats = token_stats(log_probs, labels)
    loss_sum = stats["nll_sum"]
    if label_smoothing > 0:
        mask = labels != PAD_ID
        uniform = -jnp.mean(log_probs, axis=-1)
        loss_sum = (1.0 - label_smoothing) * loss_sum + label_smoothing * jnp.sum(uniform * mask)
    return loss_sum / jnp.maximum(stats["tokens"], 1.0), stats
