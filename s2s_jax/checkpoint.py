"""Orbax checkpoints of a training run: everything needed to continue it.

Layout in the workdir: ``checkpoints/<step>`` keeps the last K saves and
``checkpoints_best/<step>`` the single best one by the chosen validation
metric, in a manager of its own so rotation never removes it. Each save holds
``state`` (step, params, optimizer state, plateau factor, PRNG key) and
``meta`` (JSON: the config, the data iterator's state, the loop's
bookkeeping). Orbax writes into a temporary directory and renames it when
complete, so a crash mid-save leaves the earlier checkpoints as they were
(the next training run deletes the leftover temporary directory); saves are
asynchronous and Orbax waits for one to finish before the next. Readers
(:func:`restore_run`, the translator) open the directories read-only, so
they may run beside a training run without disturbing its saves.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from typing import Any

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from s2s_jax.config import Config, config_diff, get_field
from s2s_jax.errors import CheckpointError, ConfigError
from s2s_jax.training.step import TrainState, create_train_state
from s2s_jax.vocab import load_tokenizers, tokenizer_path

LATEST, BEST = "checkpoints", "checkpoints_best"
# Fields a resumed run may change: they do not alter what the parameters mean.
RESUMABLE_FIELDS = ("train.num_steps", "train.num_epochs", "train.max_minutes", "train.quiet", "train.log_every",
                    "train.eval_every", "train.checkpoint_every", "train.eval_max_examples", "train.parallelism")


def state_tree(state: TrainState, rng: jax.Array) -> dict[str, Any]:
    return {"step": state.step, "params": state.params, "opt_state": state.opt_state,
            "lr_scale": state.lr_scale, "rng": jax.random.key_data(rng)}


def _shapes(tree: Any) -> dict[str, tuple]:
    """Leaf path -> shape; named-tuple fields (``.count``) are written as keys, as Orbax stores them."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {re.sub(r"\.(\w+)", r"['\1']", jax.tree_util.keystr(path)): tuple(getattr(x, "shape", ()))
            for path, x in flat}


def check_compatible(saved: Config, current: Config, where: str) -> None:
    """Refuse a checkpoint written for another model or vocabulary, naming the field."""
    fields = [f for f in config_diff(saved, current)
              if f.startswith(("model.", "data.tokenizer", "data.vocab_size", "data.joint_vocab", "data.source",
                               "data.lowercase", "data.src_lang", "data.tgt_lang"))
              and f not in ("model.dropout", "model.remat", "model.dtype")]
    if fields:
        f = fields[0]
        raise CheckpointError(f"{where} was written with {f}={get_field(saved, f)!r}, "
                              f"but this config has {f}={get_field(current, f)!r}.")


class Checkpointer:
    """The latest-K and best checkpoints of the run in ``workdir``. With ``read_only``
    nothing is created, saved or cleaned up (for readers beside a live training run)."""

    def __init__(self, workdir: str, keep: int = 3, async_save: bool = True, read_only: bool = False):
        self.workdir, self.read_only = os.path.abspath(workdir), read_only
        if read_only:  # (Orbax's own read_only option logs a warning per manager)
            opts = dict(create=False, cleanup_tmp_directories=False, enable_async_checkpointing=False)
        else:
            opts = dict(enable_async_checkpointing=async_save, create=True, cleanup_tmp_directories=True)

        def manager(sub: str, keep: int) -> ocp.CheckpointManager:
            handlers = {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
            return ocp.CheckpointManager(os.path.join(self.workdir, sub), item_handlers=handlers,
                                         options=ocp.CheckpointManagerOptions(
                                             max_to_keep=None if read_only else keep, **opts))

        self.latest = manager(LATEST, keep)
        self.best = manager(BEST, 1)

    def _manager(self, which: str | int) -> tuple[ocp.CheckpointManager, int | None]:
        if which == "best":
            return self.best, self.best.latest_step()
        if which == "latest":
            return self.latest, self.latest.latest_step()
        step = int(which)
        if step in self.latest.all_steps():
            return self.latest, step
        if step in self.best.all_steps():
            return self.best, step
        return self.latest, None

    def steps(self) -> list[int]:
        return sorted(set(self.latest.all_steps()) | set(self.best.all_steps()))

    def save(self, state: TrainState, rng: jax.Array, meta: dict[str, Any], best: bool = False) -> None:
        """Save asynchronously. The arrays are copied first: the next train step donates
        (reuses) the state's buffers while Orbax may still be reading them.

        A new best replaces the best checkpoint; one at this step or later can only come from
        a run that was interrupted and is being replayed, so it is removed first (Orbax neither
        overwrites a step nor keeps a step older than the newest)."""
        if self.read_only:
            raise RuntimeError(f"{self.workdir} was opened read-only.")
        tree = jax.tree_util.tree_map(jnp.copy, state_tree(state, rng))
        args = ocp.args.Composite(state=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(meta))
        step = int(state.step)
        manager = self.best if best else self.latest
        if best:
            manager.wait_until_finished()
            for old in manager.all_steps():
                if old >= step:
                    manager.delete(old)
        manager.save(step, args=args, force=True)

    def step_of(self, which: str | int) -> int | None:
        """The step of checkpoint ``which`` ("latest", "best" or a step), None if there is none."""
        return self._manager(which)[1]

    def read_meta(self, which: str | int = "latest") -> dict[str, Any]:
        """The JSON part of checkpoint ``which``: config, data iterator state, loop bookkeeping."""
        return self._read_meta(*self._located(which))

    @staticmethod
    def _read_meta(manager: ocp.CheckpointManager, step: int) -> dict[str, Any]:
        try:
            return manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        except Exception as e:  # Orbax raises many types for damaged files
            raise CheckpointError(f"{_where(manager, step)} is unreadable ({_first_line(e)}); "
                                  "delete it to fall back to an earlier checkpoint.") from None

    def _located(self, which: str | int) -> tuple[ocp.CheckpointManager, int]:
        manager, step = self._manager(which)
        if step is None:
            have = ", ".join(map(str, self.steps())) or "none"
            raise CheckpointError(f"no checkpoint {which!r} in {self.workdir} (steps saved: {have}).")
        return manager, step

    def restore(self, state: TrainState, rng: jax.Array, which: str | int = "latest"):
        """(state, rng, meta) restored from checkpoint ``which`` ("latest", "best" or a step)
        into the structure of ``state``; the checkpoint's config must fit ``state.config``.
        ``state`` may be abstract (``jax.eval_shape(create_train_state, ...)``): only its
        structure, shapes and dtypes are used."""
        manager, step = self._located(which)
        where = _where(manager, step)
        unreadable = f"{where} is unreadable ({{}}); delete it to fall back to an earlier checkpoint."
        meta = self._read_meta(manager, step)
        try:
            saved_cfg = Config.from_dict(meta["config"])
        except (ConfigError, KeyError, TypeError) as e:
            raise CheckpointError(unreadable.format(_first_line(e))) from None
        check_compatible(saved_cfg, state.config, where)
        target = state_tree(state, rng)
        try:
            shapes = _shapes(manager.item_metadata(step)["state"])
        except Exception as e:  # Orbax raises many types for damaged files
            raise CheckpointError(unreadable.format(_first_line(e))) from None
        # Parameters first: their names say the most about what differs.
        for path, shape in sorted(_shapes(target).items(), key=lambda kv: not kv[0].startswith("['params']")):
            if shapes.get(path) != shape:
                raise CheckpointError(f"{where} holds {path} of shape {shapes.get(path)}; "
                                      f"this model needs {shape}.")
        abstract = jax.tree_util.tree_map(_restore_target, target)
        try:
            tree = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))["state"]
        except Exception as e:
            raise CheckpointError(unreadable.format(_first_line(e))) from None
        state = state.replace(step=tree["step"], params=tree["params"], opt_state=tree["opt_state"],
                              lr_scale=tree["lr_scale"])
        return state, jax.random.wrap_key_data(tree["rng"]), meta

    def wait(self) -> None:
        self.latest.wait_until_finished()
        self.best.wait_until_finished()

    def close(self) -> None:
        self.latest.close()
        self.best.close()


def saved_config(workdir: str) -> Config | None:
    """The config of the run in ``workdir``: its config.json or, where that file is lost, the
    copy in its latest checkpoint; None for a workdir that has neither."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        if not os.path.isdir(os.path.join(workdir, LATEST)):
            return None
        ckpt = Checkpointer(workdir, read_only=True)
        try:
            return None if ckpt.step_of("latest") is None else Config.from_dict(ckpt.read_meta()["config"])
        finally:
            ckpt.close()
    with open(path, encoding="utf-8") as f:
        try:
            return Config.from_json(f.read())
        except ValueError as e:
            raise ConfigError(f"{path}: not a valid config ({_first_line(e)}).") from None


def check_workdir_config(workdir: str, cfg: Config) -> None:
    """Refuse to train in a workdir that holds a run of another config."""
    saved = saved_config(workdir)
    if saved is None:
        return
    if cfg.model.src_vocab_size == 0 or cfg.model.tgt_vocab_size == 0:  # sizes resolved from the tokenizer
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(
            cfg.model, src_vocab_size=cfg.model.src_vocab_size or saved.model.src_vocab_size,
            tgt_vocab_size=cfg.model.tgt_vocab_size or saved.model.tgt_vocab_size))
    diff = [f for f in config_diff(saved, cfg) if f not in RESUMABLE_FIELDS and not f.startswith("decode.")]
    if diff:
        f = diff[0]
        raise ConfigError(f"{workdir} holds a run with {f}={get_field(saved, f)!r}, not {get_field(cfg, f)!r}; "
                          "use another workdir (nothing there was changed).")


def _restore_target(x: Any) -> jax.ShapeDtypeStruct:
    """Shape, dtype and placement of one leaf; abstract leaves go to the default device."""
    sharding = getattr(x, "sharding", None) or jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)


def _where(manager: ocp.CheckpointManager, step: int) -> str:
    return f"checkpoint {manager.directory}/{step}"


def _first_line(e: BaseException, limit: int = 200) -> str:
    """The gist of an error: its first line without TensorStore's attached spec, at most ``limit`` characters."""
    text = str(e).strip()
    text = re.split(r" \[tensorstore_spec=|\. See full TensorStore details", text.splitlines()[0] if text else "")[0]
    text = text or type(e).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def restore_run(workdir: str, checkpoint: str | int = "best"):
    """(state, src_tokenizer, tgt_tokenizer) of the run in ``workdir`` at ``checkpoint``:
    "best" (the best validation checkpoint; the latest if there is none yet), "latest",
    or a step number. Needs only the workdir, and only reads it."""
    cfg = saved_config(workdir)
    if cfg is None:
        raise CheckpointError(f"{workdir} holds no config.json; it is not a training workdir.")
    src_tok, tgt_tok = load_tokenizers(workdir, cfg.data)
    for side, tok, size in (("src", src_tok, cfg.model.src_vocab_size), ("tgt", tgt_tok, cfg.model.tgt_vocab_size)):
        if tok.vocab_size != size:
            raise CheckpointError(f"{tokenizer_path(workdir, side)} has {tok.vocab_size} tokens but the model in "
                                  f"{workdir} was trained with model.{side}_vocab_size={size}.")
    # Only the structure is needed (nothing is initialised or compiled). The learning-rate
    # schedule is not used here; one step per epoch satisfies the halving schedule.
    state = jax.eval_shape(functools.partial(create_train_state, cfg, steps_per_epoch=1), jax.random.key(0))
    ckpt = Checkpointer(workdir, read_only=True)
    try:
        if checkpoint == "best" and ckpt.step_of("best") is None:
            checkpoint = "latest"
        state, _, _ = ckpt.restore(state, jax.random.key(0), checkpoint)
    finally:
        ckpt.close()
    return state, src_tok, tgt_tok
