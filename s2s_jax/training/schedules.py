"""Learning-rate schedules and the Optax optimizer built from ``TrainConfig``.

constant: lr;  rsqrt: lr * min(i / w, sqrt(w / i)) (Vaswani et al. 2017, eq. 3 up to scale);
halving:  lr, halved after epoch N and again every half epoch (Sutskever et al. 2014, sec. 3.4);
plateau:  lr times a factor the training loop lowers when the validation loss stops
          improving (the factor lives in the train state, so it is checkpointed).
A linear warmup over ``warmup_steps`` applies to constant, halving and plateau too.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from s2s_jax.config import TrainConfig
from s2s_jax.errors import ConfigError

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
        start = cfg.halving_start_epoch * steps_per_epoch
        half = max(steps_per_epoch / 2.0, 1.0)

        def base(step):
            s = jnp.asarray(step, jnp.float32)
            halvings = jnp.where(s >= start, jnp.floor((s - start) / half) + 1.0, 0.0)
            return lr * jnp.power(0.5, halvings)
    else:  # constant, plateau

        def base(step):
            del step
            return jnp.asarray(lr, jnp.float32)

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
        return optax.chain(optax.clip_by_global_norm(cfg.clip_norm), opt)
    return opt


def plateau_update(cfg: TrainConfig, plateau: dict, val_loss: float) -> tuple[dict, bool]:
    """Reduce-on-plateau bookkeeping after an evaluation.

    plateau: {"best": float, "bad": int, "scale": float}. Returns the new dict and
    whether the factor was lowered (after ``plateau_patience`` evaluations without
    a new best validation loss).
    """
    best, bad, scale = plateau["best"], plateau["bad"], plateau["scale"]
    if val_loss < best:
        return {"best": val_loss, "bad": 0, "scale": scale}, False
    bad += 1
    if bad >= cfg.plateau_patience:
        return {"best": best, "bad": 0, "scale": scale * cfg.plateau_factor}, True
    return {"best": best, "bad": bad, "scale": scale}, False
