"""Learning-rate schedules and the Optax optimizer built from ``TrainConfig``.

constant: lr;  rsqrt: lr * min(i / w, sqrt(w / i)) (Vaswani et al. 2017, eq. 3 up to scale);
halving:  lr, halved after epoch N and again every half epoch (Sutskever et al. 2014, sec. 3.4);
plateau:  lr times a factor lowered when the validation loss stops improving
          (optax.contrib.reduce_on_plateau; its state lives in the train state, so it is checkpointed).
A linear warmup over ``warmup_steps`` applies to constant, halving and plateau too.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from s2s_jax.config import TrainConfig
from s2s_jax.errors import ConfigError
from s2s_jax.training.clipping import clip_by_global_norm

Schedule = Callable[[jax.Array], jax.Array]


def learning_rate_schedule(cfg: TrainConfig, steps_per_epoch: int | None = None) -> Schedule:
    """step -> learning rate (before the plateau factor)."""
    lr, warmup = cfg.learning_rate, cfg.warmup_steps
    if cfg.lr_schedule == "rsqrt":
        if warmup <= 0:
            raise ConfigError("train.warmup_steps must be positive for the rsqrt schedule.")

        def rsqrt(step):
            i = jnp.maximum(jnp.asarray(step, jnp.float32), 1.0)
            return lr * jnp.minimum(i / warmup, jnp.sqrt(warmup / i))

        return rsqrt

    if cfg.lr_schedule == "halving":
        if not steps_per_epoch:
            raise ConfigError("train.lr_schedule 'halving' needs the number of steps per epoch (train() knows it; "
                              "pass steps_per_epoch= to create_train_state).")
        # Halved at the start epoch, then every half epoch after it.
        base = optax.join_schedules(
            [optax.constant_schedule(lr),
             optax.exponential_decay(lr / 2, transition_steps=max(steps_per_epoch / 2.0, 1.0), decay_rate=0.5,
                                     staircase=True)],
            boundaries=[cfg.halving_start_epoch * steps_per_epoch])
    else:  # constant, plateau (whose factor plateau_schedule keeps in the train state)
        base = optax.constant_schedule(lr)

    if warmup <= 0:
        return base
    return lambda step: base(step) * jnp.minimum(1.0, (jnp.asarray(step, jnp.float32) + 1.0) / warmup)


def make_optimizer(cfg: TrainConfig, schedule: Schedule) -> optax.GradientTransformation:
    """Global-norm clipping followed by the configured optimizer."""
    if cfg.optimizer == "sgd":
        opt = optax.sgd(schedule)
    elif cfg.optimizer == "momentum":
        opt = optax.sgd(schedule, momentum=cfg.momentum)
    elif cfg.optimizer == "adam":
        opt = optax.adam(schedule)
    else:
        opt = optax.adamw(schedule, weight_decay=cfg.weight_decay)
    if cfg.clip_norm > 0:
        return optax.chain(clip_by_global_norm(cfg.clip_norm), opt)
    return opt


def plateau_schedule(cfg: TrainConfig) -> optax.GradientTransformationExtraArgs:
    """Optax's reduce-on-plateau: the factor is multiplied by ``plateau_factor`` after
    ``plateau_patience`` evaluations without a validation loss below the best so far. Its state
    is the train state's ``plateau``; :func:`after_evaluation` feeds it each validation loss."""
    # Optax asks for a tolerance; below a float32 loss's resolution, this one asks for any decrease.
    return optax.contrib.reduce_on_plateau(factor=cfg.plateau_factor, patience=cfg.plateau_patience, rtol=0.0,
                                           atol=1e-9, cooldown=0, accumulation_size=1)


def after_evaluation(cfg: TrainConfig, plateau: optax.contrib.ReduceLROnPlateauState,
                     val_loss: float) -> optax.contrib.ReduceLROnPlateauState:
    """The plateau state after an evaluation with ``val_loss``; unchanged unless ``lr_schedule`` is plateau."""
    if cfg.lr_schedule != "plateau":
        return plateau
    return plateau_schedule(cfg).update({}, plateau, value=val_loss)[1]
