"""Orbax checkpoints of a training run: everything needed to continue it.

Layout in the workdir: ``checkpoints/<step>``, one Orbax manager whose
preservation policy keeps the last K saves and the best one by the chosen
validation metric (saves at evaluations carry the metric). Each save holds
``state`` (step, params, optimizer state, plateau state, PRNG key) and
``meta`` (JSON: the config, the data iterator's state, the loop's
bookkeeping). Orbax writes into a temporary directory and renames it when
complete, so a crash mid-save leaves the earlier checkpoints as they were
(the next training run deletes the leftover temporary directory); saves are
asynchronous and Orbax waits for one to finish before the next. Readers
(:func:`restore`, the translator) open the directories read-only, so
they may run beside a training run without disturbing its saves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import re
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from s2s_jax.config import Config, best_mode, config_diff, field_metadata, get_field
from s2s_jax.errors import CheckpointError, ConfigError, StorageError
from s2s_jax.fileio import atomic_write_text, close_on_exit, free_space, read_text, workdir_lock
from s2s_jax.training.step import TrainState, create_train_state
from s2s_jax.vocab import Tokenizer, load_tokenizers, save_tokenizers, tokenizer_path

CHECKPOINTS = "checkpoints"
OLD_BEST = "checkpoints_best"  # the best checkpoint's directory in the layout of earlier versions
# Of the saved tree and meta; a checkpoint of another format is refused. 4: the generator's
# vocabulary kernel stored [dim, vocab] (3: [vocab, dim]; 2: [dim, vocab]).
FORMAT = 4


def state_tree(state: TrainState, rng: jax.Array) -> dict[str, Any]:
    return {"step": state.step, "params": state.params, "opt_state": state.opt_state,
            "plateau": state.plateau._asdict(), "rng": jax.random.key_data(rng)}


def _shapes(tree: Any) -> dict[str, tuple]:
    """Leaf path -> shape; named-tuple fields (``.count``) are written as keys, as Orbax stores them."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {re.sub(r"\.(\w+)", r"['\1']", jax.tree_util.keystr(path)): tuple(getattr(x, "shape", ()))
            for path, x in flat}


def check_compatible(saved: Config, current: Config, where: str) -> None:
    """Refuse a checkpoint written for another model or vocabulary, naming the field."""
    fields = [f for f in config_diff(saved, current) if field_metadata(f)["params"]]
    if fields:
        f = fields[0]
        raise CheckpointError(f"{where} was written with {f}={get_field(saved, f)!r}, "
                              f"but this config has {f}={get_field(current, f)!r}.")


class Checkpointer:
    """The checkpoints of the run in ``workdir``: one Orbax manager whose preservation policy
    keeps the latest ``keep`` saves and the best one (a save given a validation score competes
    for best; one without is kept only while it is among the latest). With ``read_only``
    nothing is created, saved or cleaned up (for readers beside a live training run)."""

    def __init__(self, workdir: str, keep: int = 3, async_save: bool = True, read_only: bool = False):
        self.workdir, self.read_only = os.path.abspath(workdir), read_only
        self._pending: int | None = None  # the step of the save in flight
        if os.path.isdir(os.path.join(self.workdir, OLD_BEST)):
            raise CheckpointError(f"{workdir} holds checkpoints in the layout of an earlier s2s_jax ({OLD_BEST}/), "
                                  "which this version does not read; train in a new workdir.")
        if read_only:  # (Orbax's own read_only option logs a warning per manager)
            opts = dict(create=False, cleanup_tmp_directories=False, enable_async_checkpointing=False)
        else:
            opts = dict(enable_async_checkpointing=async_save, create=True, cleanup_tmp_directories=True)

        policy = None if read_only else ocp.checkpoint_managers.AnyPreservationPolicy([
            ocp.checkpoint_managers.LatestN(n=keep),
            ocp.checkpoint_managers.BestN(get_metric_fn=_score, n=1, keep_checkpoints_without_metrics=False)])
        handlers = {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
        self.manager = ocp.CheckpointManager(
            os.path.join(self.workdir, CHECKPOINTS), item_handlers=handlers,
            options=ocp.CheckpointManagerOptions(preservation_policy=policy, best_fn=_score, best_mode="max", **opts))

    def _step(self, which: str | int) -> int | None:
        if which == "best":
            return self.manager.best_step() if any(self.manager.metrics(s) for s in self.steps()) else None
        if which == "latest":
            return self.manager.latest_step()
        step = int(which)
        return step if step in self.steps() else None

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def save(self, state: TrainState, rng: jax.Array, meta: dict[str, Any],
             best: tuple[str, float] | None = None) -> None:
        """Save asynchronously. With ``best`` = (validation metric, value) the save competes
        for best (Orbax keeps the save of the highest score: the value, negated where lower is
        better). The arrays are copied first: the next train step donates (reuses) the state's
        buffers while Orbax may still be reading them."""
        if self.read_only:
            raise RuntimeError(f"{self.workdir} was opened read-only.")
        tree = jax.tree_util.tree_map(jnp.copy, state_tree(state, rng))
        meta = {**meta, "format": FORMAT}
        args = ocp.args.Composite(state=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(meta))
        metrics = {}  # (no metrics at all makes Orbax warn at every save)
        if best is not None:
            name, value = best
            metrics = {name: value, "score": value if best_mode(name) == "max" else -value}
        self.wait()  # a failure of the previous (asynchronous) save is reported as that save's
        self._pending = int(state.step)
        try:
            self.manager.save(self._pending, args=args, metrics=metrics, force=True)
        except Exception as e:  # Orbax and TensorStore raise many types for a failed write
            raise self._failed(e) from None

    def reached_preemption(self, step: int) -> bool:
        """Whether every host has reached the step at which a preemption notice (SIGTERM to any
        host of a ``jax.distributed`` run) is to be saved; False in a single process."""
        return self.manager.reached_preemption(step)

    def step_of(self, which: str | int) -> int | None:
        """The step of checkpoint ``which`` ("latest", "best" or a step), None if there is none."""
        return self._step(which)

    def read_meta(self, which: str | int = "latest") -> dict[str, Any]:
        """The JSON part of checkpoint ``which``: config, data iterator state, loop bookkeeping."""
        meta = self._read_meta(self._located(which))
        meta.pop("format", None)
        return meta

    def _read_meta(self, step: int) -> dict[str, Any]:
        try:
            return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        except Exception as e:  # Orbax raises many types for damaged files
            raise CheckpointError(f"{self._where(step)} is unreadable ({_first_line(e)}); "
                                  "delete it to fall back to an earlier checkpoint.") from None

    def _located(self, which: str | int) -> int:
        step = self._step(which)
        if step is None:
            have = ", ".join(map(str, self.steps())) or "none"
            raise CheckpointError(f"no checkpoint {which!r} in {self.workdir} (steps saved: {have}).")
        return step

    def _where(self, step: int) -> str:
        return f"checkpoint {self.manager.directory}/{step}"

    def restore(self, state: TrainState, rng: jax.Array, which: str | int = "latest"):
        """(state, rng, meta) restored from checkpoint ``which`` ("latest", "best" or a step)
        into the structure of ``state``; the checkpoint's config must fit ``state.config``.
        ``state`` may be abstract (``jax.eval_shape(create_train_state, ...)``): only its
        structure, shapes and dtypes are used."""
        step = self._located(which)
        where = self._where(step)
        unreadable = f"{where} is unreadable ({{}}); delete it to fall back to an earlier checkpoint."
        meta = self._read_meta(step)
        if meta.pop("format", None) != FORMAT:
            raise CheckpointError(f"{where} was written by an earlier version of s2s_jax, whose checkpoints this "
                                  "version does not read; train in a new workdir.")
        try:
            saved_cfg = Config.from_dict(meta["config"])
        except (ConfigError, KeyError, TypeError) as e:
            raise CheckpointError(unreadable.format(_first_line(e))) from None
        check_compatible(saved_cfg, state.config, where)
        target = state_tree(state, rng)
        try:
            shapes = _shapes(self.manager.item_metadata(step)["state"])
        except Exception as e:  # Orbax raises many types for damaged files
            raise CheckpointError(unreadable.format(_first_line(e))) from None
        # Parameters first: their names say the most about what differs.
        for path, shape in sorted(_shapes(target).items(), key=lambda kv: not kv[0].startswith("['params']")):
            if shapes.get(path) != shape:
                raise CheckpointError(f"{where} holds {path} of shape {shapes.get(path)}; "
                                      f"this model needs {shape}.")
        abstract = jax.tree_util.tree_map(_restore_target, target)
        try:
            args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
            tree = self.manager.restore(step, args=args)["state"]
        except Exception as e:
            raise CheckpointError(unreadable.format(_first_line(e))) from None
        state = state.replace(step=tree["step"], params=tree["params"], opt_state=tree["opt_state"],
                              plateau=type(state.plateau)(**tree["plateau"]))
        return state, jax.random.wrap_key_data(tree["rng"]), meta

    def wait(self) -> None:
        """Wait for the save in flight; a failed one raises :class:`StorageError`, after which the
        earlier checkpoints are intact (the partial one is a temporary directory that readers
        ignore and the next writer removes)."""
        try:
            self.manager.wait_until_finished()
        except Exception as e:
            raise self._failed(e) from None
        self._pending = None

    def close(self) -> None:
        """:meth:`wait`, then release the manager (also when the wait fails)."""
        try:
            self.wait()
        finally:
            with contextlib.suppress(Exception):  # its error, if any, was raised by wait()
                self.manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        close_on_exit(self.close, failing=exc_type is not None)

    def _failed(self, e: BaseException) -> StorageError:
        step = "" if self._pending is None else f" {self._pending}"
        self._pending = None
        return StorageError(f"saving checkpoint{step} into {self.manager.directory} failed: {_os_cause(e)} "
                            f"({free_space(str(self.manager.directory))}); the earlier checkpoints are intact.")


def saved_config(workdir: str) -> Config | None:
    """The config of the run in ``workdir``: its config.json or, where that file is lost, the
    copy in its latest checkpoint; None for a workdir that has neither."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        if not os.path.isdir(os.path.join(workdir, CHECKPOINTS)):
            return None
        ckpt = Checkpointer(workdir, read_only=True)
        try:
            return None if ckpt.step_of("latest") is None else Config.from_dict(ckpt.read_meta()["config"])
        finally:
            ckpt.close()
    text = read_text(path)
    try:
        return Config.from_json(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}:{e.lineno}: not valid JSON ({e.msg}).") from None
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
    diff = [f for f in config_diff(saved, cfg) if not field_metadata(f)["resumable"]]
    if diff:
        f = diff[0]
        raise ConfigError(f"{workdir} holds a run with {f}={get_field(saved, f)!r}, not {get_field(cfg, f)!r}; "
                          "use another workdir (nothing there was changed).")


def _score(metrics: dict[str, float]) -> float:
    return metrics.get("score", -math.inf)


def _restore_target(x: Any) -> jax.ShapeDtypeStruct:
    """Shape, dtype and placement of one leaf; abstract leaves go to the default device."""
    sharding = getattr(x, "sharding", None) or jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)


def _os_cause(e: BaseException) -> str:
    """The operating system's words for a failed write (TensorStore puts its error code in the
    message), else the gist of the error."""
    cause: BaseException | None = e
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        code = re.search(r"os_error_code='?(\d+)", str(cause))
        if code:
            return os.strerror(int(code.group(1)))
        cause = cause.__cause__ or cause.__context__
    return _first_line(e)


def _first_line(e: BaseException, limit: int = 200) -> str:
    """The gist of an error: its first line without TensorStore's attached spec, at most ``limit`` characters."""
    text = str(e).strip()
    text = re.split(r" \[tensorstore_spec=|\. See full TensorStore details", text.splitlines()[0] if text else "")[0]
    text = text or type(e).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


class Restored(NamedTuple):
    """A trained run as :func:`restore` returns it."""

    config: Config
    state: TrainState
    src_tokenizer: Tokenizer
    tgt_tokenizer: Tokenizer


def restore(workdir: str, checkpoint: str | int = "best") -> Restored:
    """(config, state, src_tokenizer, tgt_tokenizer) of the run in ``workdir`` at
    ``checkpoint``: "best" (the best validation checkpoint; the latest if there is none yet),
    "latest", or a step number. Needs only the workdir, and only reads it."""
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
    return Restored(cfg, state, src_tok, tgt_tok)


def save(workdir: str, state: TrainState, src_tokenizer: Tokenizer, tgt_tokenizer: Tokenizer,
         key: jax.Array | None = None) -> None:
    """Write ``state`` (and the PRNG ``key``, default key 0) as a checkpoint of the run in
    ``workdir``, with its config and tokenizers beside it, so that :func:`restore`, the
    Translator, ``s2s-eval`` and ``s2s-translate`` read it as they read a trained run."""
    check_workdir_config(workdir, state.config)
    with workdir_lock(workdir):
        save_tokenizers(workdir, src_tokenizer, tgt_tokenizer, state.config.data)
        atomic_write_text(os.path.join(workdir, "config.json"), state.config.to_json())
        ckpt = Checkpointer(workdir, state.config.train.keep_checkpoints, async_save=False)
        try:
            if int(state.step) in ckpt.steps():
                raise CheckpointError(f"{workdir} already holds a checkpoint of step {int(state.step)}.")
            ckpt.save(state, jax.random.key(0) if key is None else key, {"config": state.config.to_dict()})
        finally:
            ckpt.close()
