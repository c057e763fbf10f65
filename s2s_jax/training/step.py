"""The train state and the pure, jit-compiled ``train_step`` and ``eval_step``.

A batch is ``{"src": [batch, src_len], "tgt": [batch, tgt_len + 1]}`` of
right-padded int32 ids; the decoder input is ``tgt[:, :-1]`` and the labels
``tgt[:, 1:]``. Extra keys (such as ``index``) are ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from s2s_jax.config import Config
from s2s_jax.models.scheduled_sampling import teacher_forcing_prob
from s2s_jax.models.seq2seq import Seq2Seq
from s2s_jax.training.clipping import global_norm
from s2s_jax.training.losses import loss_from_token_terms, sequence_loss
from s2s_jax.training.schedules import learning_rate_schedule, make_optimizer, plateau_schedule


class TrainState(struct.PyTreeNode):
    step: jax.Array
    params: Any
    opt_state: Any
    plateau: optax.contrib.ReduceLROnPlateauState  # its scale multiplies the updates (1 unless lr_schedule=plateau)
    config: Config = struct.field(pytree_node=False)
    model: Seq2Seq = struct.field(pytree_node=False)
    tx: optax.GradientTransformation = struct.field(pytree_node=False)
    lr_fn: Callable[[jax.Array], jax.Array] = struct.field(pytree_node=False)

    @property
    def lr_scale(self) -> jax.Array:
        """The reduce-on-plateau factor of the learning rate."""
        return self.plateau.scale


def init_params(model: Seq2Seq, key: jax.Array) -> Any:
    """Parameters of ``model``: Flax's initialisers, or uniform(-s, s) everywhere
    when ``init_scale`` = s > 0 (Sutskever et al. 2014 use s = 0.08)."""
    dummy = jnp.ones((1, 2), jnp.int32)
    params = jax.jit(model.init)({"params": key}, dummy, dummy)["params"]
    scale = model.cfg.init_scale
    if scale > 0:
        leaves, treedef = jax.tree_util.tree_flatten(params)
        keys = jax.random.split(jax.random.fold_in(key, 1), len(leaves))
        leaves = [jax.random.uniform(k, x.shape, x.dtype, -scale, scale) for k, x in zip(keys, leaves, strict=True)]
        params = jax.tree_util.tree_unflatten(treedef, leaves)
    return params


def create_train_state(cfg: Config, key: jax.Array, steps_per_epoch: int | None = None) -> TrainState:
    """A fresh train state: parameters, optimizer state, step 0.

    ``steps_per_epoch`` is needed only by the ``halving`` learning-rate schedule.
    """
    model = Seq2Seq(cfg.model)
    params = init_params(model, key)
    lr_fn = learning_rate_schedule(cfg.train, steps_per_epoch)
    tx = make_optimizer(cfg.train, lr_fn)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                      plateau=plateau_schedule(cfg.train).init(params), config=cfg, model=model, tx=tx, lr_fn=lr_fn)


def loss_and_grads(state: TrainState, batch: dict[str, jax.Array], key: jax.Array):
    """((loss, stats), grads) of one batch; shared by the single- and multi-device steps."""
    cfg = state.config.train
    ss = cfg.scheduled_sampling
    tgt = batch["tgt"]
    dropout_key, sampling_key = jax.random.split(key)
    prob = teacher_forcing_prob(ss, state.step)

    rngs = {"dropout": dropout_key, "sampling": sampling_key}

    def loss_fn(params):
        variables = {"params": params}
        if ss.schedule == "none":  # straight from the logits: no [batch, time, vocab] log-probabilities
            terms = state.model.apply(variables, batch["src"], tgt[:, :-1], tgt[:, 1:], train=True,
                                      label_smoothing=cfg.label_smoothing, rngs=rngs, method=Seq2Seq.token_losses)
            loss, stats = loss_from_token_terms(*terms, tgt[:, 1:])
        else:
            log_probs = state.model.apply(variables, batch["src"], tgt[:, :-1], train=True,
                                          teacher_forcing_prob=prob, sampling_mode=ss.mode, rngs=rngs)
            loss, stats = sequence_loss(log_probs, tgt[:, 1:], cfg.label_smoothing)
        return loss, stats | {"teacher_forcing_prob": prob}

    return jax.value_and_grad(loss_fn, has_aux=True)(state.params)


def apply_gradients(state: TrainState, grads: Any) -> tuple[TrainState, dict[str, jax.Array]]:
    updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
    updates = jax.tree_util.tree_map(lambda u: u * state.lr_scale, updates)
    new = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates), opt_state=opt_state)
    return new, {"grad_norm": global_norm(grads), "learning_rate": state.lr_fn(state.step) * state.lr_scale}


def train_step_fn(state: TrainState, batch: dict[str, jax.Array], key: jax.Array) -> tuple[TrainState, dict]:
    """One optimizer update. Metrics: loss (per token, as optimised), nll_sum, tokens,
    correct, grad_norm, learning_rate, teacher_forcing_prob."""
    (loss, stats), grads = loss_and_grads(state, batch, key)
    state, extra = apply_gradients(state, grads)
    return state, {"loss": loss, **stats, **extra}


def eval_step_fn(state: TrainState, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Teacher-forced sums over a batch: nll_sum, tokens, correct."""
    tgt = batch["tgt"]
    terms = state.model.apply({"params": state.params}, batch["src"], tgt[:, :-1], tgt[:, 1:],
                              method=Seq2Seq.token_losses)
    return loss_from_token_terms(*terms, tgt[:, 1:])[1]


train_step = jax.jit(train_step_fn, donate_argnums=0)
eval_step = jax.jit(eval_step_fn)
