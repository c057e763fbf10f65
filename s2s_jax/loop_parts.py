"""The named pieces of the training loop (:mod:`s2s_jax.loop`): the runs it advances (one, or
many seeds stacked, :mod:`s2s_jax.seeds`), starting or resuming, saving, evaluating, watching
the loss, logging, the clock and the stop."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import signal
import time
from collections.abc import Callable

import jax
import numpy as np
from jax.experimental import multihost_utils

from s2s_jax.checkpoint import Checkpointer
from s2s_jax.config import Config, best_mode
from s2s_jax.data.dataset import Data
from s2s_jax.data.pipeline import BatchIterator
from s2s_jax.errors import NonFiniteLossError
from s2s_jax.evaluation import evaluate
from s2s_jax.fileio import atomic_write_text
from s2s_jax.parallel import Parallel
from s2s_jax.plots import attention_examples
from s2s_jax.progress import progress
from s2s_jax.summary import MetricsWriter
from s2s_jax.training import seeds as seeds_lib
from s2s_jax.training.schedules import after_evaluation
from s2s_jax.training.step import TrainState, create_train_state

log = logging.getLogger("s2s_jax")

EXAMPLES_PER_EVAL = 4  # sample translations (and heatmaps) shown in TensorBoard per evaluation


@dataclasses.dataclass
class RunResult:
    state: TrainState  # with train.seeds: every seed's, stacked on a leading axis
    data: Data
    stopped: str  # "finished" | "signal" | "time"


@dataclasses.dataclass
class Bookkeeping:
    """What the loop carries besides the train state, saved in every checkpoint's ``meta``."""

    best: float | None = None  # the best validation value of train.best_metric so far
    minutes: float = 0.0  # training minutes up to the save (a time-to-quality curve spans preemptions)


@dataclasses.dataclass
class Member:
    """One run of a :class:`Group`: its config, and where its checkpoints, metrics and data
    position go."""

    config: Config
    ckpt: Checkpointer
    writer: MetricsWriter
    batches: BatchIterator
    book: Bookkeeping


@dataclasses.dataclass
class Group:
    """The runs one loop advances with one compiled step: a single run, or with ``stacked``
    many seeds whose train states and keys carry a leading seed axis.

    ``train_step(state, rng, step)`` takes the step's batch and returns the new state (the old
    one is donated) and the metrics (one entry per seed when stacked)."""

    members: list[Member]
    state: TrainState
    rng: jax.Array
    train_step: Callable[[TrainState, jax.Array, int], tuple[TrainState, dict]]
    par: Parallel
    stacked: bool = False

    @property
    def step(self) -> int:
        return int(self.state.step[0] if self.stacked else self.state.step)

    def member_state(self, i: int) -> TrainState:
        """Member ``i``'s train state; a seed's keeps the static parts (config, model) the
        seeds share, so evaluating each compiles once."""
        return seeds_lib.unstack(self.state, i) if self.stacked else self.state

    def member_rng(self, i: int) -> jax.Array:
        return seeds_lib.unstack(self.rng, i) if self.stacked else self.rng

    def advance(self, step: int) -> dict:
        self.state, m = self.train_step(self.state, self.rng, step)
        return m

    def validate(self, i: int, data: Data, step: int, clock: Clock) -> bool:
        """Evaluate member ``i`` on the validation split, step its plateau schedule; whether
        its score is a new best (then recorded in its bookkeeping)."""
        member, tcfg = self.members[i], self.members[i].config.train
        state = self.member_state(i)
        scores = evaluate_split(state, data, "validation", step, member.writer, clock, self.par)
        plateau = self.par.replicate(after_evaluation(tcfg, state.plateau, scores["loss"]))
        if self.stacked:
            plateau = jax.tree_util.tree_map(lambda all_, one: all_.at[i].set(one), self.state.plateau, plateau)
        self.state = self.state.replace(plateau=plateau)
        if not better(tcfg.best_metric, scores[tcfg.best_metric], member.book.best):
            return False
        member.book.best = scores[tcfg.best_metric]
        return True

    def save(self, i: int, clock: Clock, new_best: bool) -> None:
        member = self.members[i]
        best = (member.config.train.best_metric, member.book.best) if new_best else None
        state = self.member_state(i).replace(config=member.config)  # a seed's checkpoint holds its own config
        save(member.ckpt, state, self.member_rng(i), member.batches, member.book, clock, best)


def start_one(stack: contextlib.ExitStack, cfg: Config, workdir: str, batches: BatchIterator,
              par: Parallel) -> Group:
    """The :class:`Group` of a single run in ``workdir``, started or resumed."""
    ckpt = stack.enter_context(Checkpointer(workdir, cfg.train.keep_checkpoints))
    writer = stack.enter_context(MetricsWriter(workdir, enabled=par.is_main_process))
    state, rng, book = restore_or_start(cfg, workdir, par, ckpt, batches, writer)

    def train_step(state: TrainState, rng: jax.Array, step: int) -> tuple[TrainState, dict]:
        batch = next(batches)
        return par.train_step(state, par.shard_batch({"src": batch["src"], "tgt": batch["tgt"]}),
                              jax.random.fold_in(rng, step))

    return Group([Member(cfg, ckpt, writer, batches, book)], state, rng, train_step, par)


def total_steps(cfg: Config, steps_per_epoch: int) -> int:
    if cfg.train.num_epochs > 0:
        return math.ceil(cfg.train.num_epochs * steps_per_epoch)
    return cfg.train.num_steps


def restore_or_start(cfg: Config, workdir: str, par: Parallel, ckpt: Checkpointer, batches: BatchIterator,
                     metrics: MetricsWriter) -> tuple[TrainState, jax.Array, Bookkeeping]:
    """The state, key and bookkeeping of the latest checkpoint (the data iterator is put back at
    its batch), or fresh ones; metrics records after the checkpoint's step are dropped."""
    init_key, rng = jax.random.split(jax.random.key(cfg.train.seed))
    state = par.replicate(create_train_state(cfg, init_key, batches.steps_per_epoch))
    rng = par.replicate(rng)  # checkpoints restore into these placements
    config_path = os.path.join(workdir, "config.json")
    if ckpt.step_of("latest") is None:
        metrics.truncate_after(0)  # records of an earlier attempt that never reached a checkpoint
        atomic_write_text(config_path, cfg.to_json())
        return state, rng, Bookkeeping()
    state, rng, meta = ckpt.restore(state, rng)
    batches.set_state(meta["data_iterator"])
    if not os.path.exists(config_path):  # lost; check_workdir_config read the checkpoint's copy
        atomic_write_text(config_path, Config.from_dict(meta["config"]).to_json())
    metrics.truncate_after(int(state.step))
    log.info("Resumed %s at step %d.", workdir, int(state.step))
    return state, rng, Bookkeeping(**meta["loop"])


def save(ckpt: Checkpointer, state: TrainState, rng: jax.Array, batches: BatchIterator, book: Bookkeeping,
         clock: Clock, best: tuple[str, float] | None) -> None:
    """Checkpoint everything the run carries; ``best`` (metric, value) marks a new best."""
    loop = {**dataclasses.asdict(book), "minutes": clock.minutes()}
    ckpt.save(state, rng, {"config": state.config.to_dict(), "data_iterator": batches.get_state(), "loop": loop},
              best)


def better(metric: str, value: float, best: float | None) -> bool:
    if best is None:
        return True
    return value < best if best_mode(metric) == "min" else value > best


def evaluate_split(state: TrainState, data: Data, name: str, step: int, metrics: MetricsWriter, clock: Clock,
                   par: Parallel) -> dict:
    """Evaluate split ``name``: its scores, a metrics record, and sample translations (with
    attention heatmaps) for TensorBoard."""
    cfg = state.config
    split = data.splits[name]
    limit = cfg.train.eval_max_examples if name == "validation" else 0
    with progress(min(limit, len(split)) if limit else len(split), name, cfg.train.quiet, unit="sentence",
                  leave=False) as bar:
        scores, hyps = evaluate(state, split, data.tgt_tokenizer, cfg.decode, limit, bar.update, par)
    metrics.write(step, name, {**scores, "minutes": clock.minutes()})
    log.info("step %d %s: loss %.4f bleu %.2f exact %.4f", step, name, scores["loss"], scores["bleu"],
             scores["exact_match"])
    k = min(EXAMPLES_PER_EVAL, len(hyps))
    examples = []
    if cfg.model.attention != "none":
        examples = attention_examples(state, split, data.src_tokenizer, data.tgt_tokenizer, range(k), par)
    figures = {f"attention/{i}": ex.heatmap() for i, ex in enumerate(examples)} if metrics.enabled else {}
    metrics.write_examples(step, name, split.raw_src[:k], hyps[:k], split.raw_tgt[:k], figures)
    return scores


class Clock:
    """Training minutes across attempts: those ``before`` this one plus this attempt's."""

    def __init__(self, before: float):
        self.before, self.start = before, time.perf_counter()

    def minutes(self) -> float:
        return self.before + self.attempt_minutes()

    def attempt_minutes(self) -> float:
        return (time.perf_counter() - self.start) / 60


class LossWatch:
    """Losses and gradient norms kept on the device until a check, so steps do not wait on them;
    a non-finite one (whose update poisons the parameters) stops the run before the next save.
    With ``seeds``, the values hold one entry per seed, and the message names the seed."""

    def __init__(self, ckpt: Checkpointer, seeds: tuple[int, ...] = ()):
        self.ckpt, self.seeds, self.pending = ckpt, seeds, []

    def add(self, step: int, m: dict) -> None:
        self.pending.append((step, m["loss"], m["grad_norm"]))

    def check(self) -> None:
        for step, *values in self.pending:
            for name, value in zip(("loss", "gradient norm"), values, strict=True):
                value = np.atleast_1d(np.asarray(value))
                bad = np.flatnonzero(~np.isfinite(value))
                if bad.size:
                    kept = self.ckpt.step_of("latest")
                    which = f" of seed {self.seeds[bad[0]]}" if self.seeds else ""
                    kept = "(no checkpoint was saved yet)." if kept is None else f"(checkpoint {kept} is kept)."
                    raise NonFiniteLossError(f"the training {name}{which} became {float(value[bad[0]])} at step "
                                             f"{step}; stopped without saving {kept}")
        self.pending.clear()


class TrainLog:
    """Training records every ``log_every`` steps (per-token NLL and accuracy over the window,
    tokens/s) into each of ``writers``, and the progress bar. With several writers (one per
    seed) the metrics hold one entry per seed, in the writers' order; the bar shows the first."""

    def __init__(self, writers: list[MetricsWriter], batches: BatchIterator, total: int, clock: Clock, quiet: bool,
                 initial: int):
        self.writers, self.batches, self.total, self.clock = writers, batches, total, clock
        # A live bar on a terminal; plain log lines (or nothing, when quiet) in a log file.
        self.bar = progress(total, "train", quiet, initial=initial)
        self._reset()

    def _reset(self) -> None:
        self.sums = {"nll_sum": 0.0, "tokens": 0.0, "correct": 0.0}
        self.t0 = time.perf_counter()

    def add(self, m: dict) -> None:
        for k in self.sums:  # device values: no sync per step
            self.sums[k] = self.sums[k] + m[k]
        self.bar.update(1)

    def write(self, step: int, m: dict) -> None:
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        shown = {k: m[k] for k in ("loss", "grad_norm", "learning_rate", "teacher_forcing_prob")}
        values = {k: np.atleast_1d(np.asarray(v, np.float64)) for k, v in {**self.sums, **shown}.items()}
        for i, writer in enumerate(self.writers):
            tokens = float(values["tokens"][i])
            record = {"loss": float(values["loss"][i]), "nll": float(values["nll_sum"][i]) / max(tokens, 1.0),
                      "token_accuracy": float(values["correct"][i]) / max(tokens, 1.0),
                      "grad_norm": float(values["grad_norm"][i]), "learning_rate": float(values["learning_rate"][i]),
                      "teacher_forcing_prob": float(values["teacher_forcing_prob"][i]),
                      "tokens_per_s": tokens / elapsed, "epoch": self.batches.epoch_progress,
                      "minutes": self.clock.minutes()}
            record["perplexity"] = math.exp(min(record["nll"], 50.0))
            writer.write(step, "train", record)
            if i == 0 and self.bar.disable:
                log.info("step %d/%d loss %.4f %.0f tokens/s", step, self.total, record["loss"],
                         record["tokens_per_s"])
            elif i == 0:
                self.bar.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{record['tokens_per_s']:.0f}")
        self._reset()

    def __enter__(self) -> TrainLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()


class Stop:
    """Whether to stop after a step, and why, agreed by every process: a signal (SIGTERM or
    SIGINT; in a multi-process run JAX's preemption service receives it and Orbax's
    ``reached_preemption`` names the step every host saves at), or ``train.max_minutes`` of this
    attempt on process 0's clock."""

    def __init__(self, ckpt: Checkpointer, max_minutes: float):
        self.ckpt, self.max_minutes = ckpt, max_minutes
        self.signal: int | None = None

    def _handle(self, signum, frame):
        self.signal = signum
        # The second signal gets the default disposition, which ends the process at once even
        # while it waits in compiled code or on a save, where Python handlers cannot run.
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, signal.SIG_DFL)

    @contextlib.contextmanager
    def installed(self):
        if jax.process_count() > 1:  # JAX's preemption service owns SIGTERM
            yield self
            return
        try:
            old = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}
        except ValueError:  # not the main thread: leave signals alone
            yield self
            return
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def reason(self, step: int, clock: Clock) -> str | None:
        if self.signal is not None or self.ckpt.reached_preemption(step):
            return "signal"
        out_of_time = self.max_minutes > 0 and clock.attempt_minutes() > self.max_minutes
        if jax.process_count() > 1:
            out_of_time = bool(multihost_utils.broadcast_one_to_all(np.asarray(out_of_time)))
        return "time" if out_of_time else None
