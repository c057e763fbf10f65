"""``train(config, workdir)``: the whole training run, resumable.

Data -> batches -> ``train_step`` -> periodic evaluation (loss, perplexity,
token accuracy, BLEU/chrF/exact match of decodes) -> ``metrics.jsonl`` and
checkpoints. Everything a run carries from step to step is explicit: the train
state (parameters, optimizer and plateau state), the PRNG key, the data
iterator's position and the :class:`Bookkeeping`; every checkpoint holds all of
them, so a workdir with a checkpoint resumes from its latest one exactly.

One writer at a time: the run holds the workdir's lock (:func:`s2s_jax.fileio.workdir_lock`)
from before it writes anything until it returns. A failed save (a full disk, a lost permission)
stops the run with one sentence (:class:`s2s_jax.errors.StorageError`): the earlier
checkpoints stay restorable, and running the same command again resumes from the last one.

Stopping early: SIGTERM or SIGINT finish the current step, save and return; a
second signal exits at once (checkpoints are written atomically, so nothing is
corrupted). In a multi-process run JAX's preemption service takes the signal
and every host stops at the step Orbax's ``reached_preemption`` agrees on; the
``train.max_minutes`` budget is read on process 0's clock and broadcast. A
non-finite loss stops the run before anything is saved from it.
"""

from __future__ import annotations

import logging

import jax

from s2s_jax.checkpoint import Checkpointer, check_workdir_config
from s2s_jax.config import Config
from s2s_jax.data.pipeline import load_data
from s2s_jax.fileio import workdir_lock
from s2s_jax.loop_parts import (
    Clock,
    LossWatch,
    RunResult,
    Stop,
    TrainLog,
    better,
    evaluate_split,
    restore_or_start,
    save,
    total_steps,
)
from s2s_jax.parallel import Parallel, initialize_distributed, main_process_first
from s2s_jax.precision import resolve_dtype
from s2s_jax.seeds import run_seeds
from s2s_jax.summary import MetricsWriter
from s2s_jax.training.schedules import after_evaluation
from s2s_jax.training.step import TrainState

log = logging.getLogger("s2s_jax")


def train(cfg: Config, workdir: str) -> TrainState:
    """Train ``cfg`` in ``workdir`` (resuming a checkpoint there); returns the final state."""
    return run(cfg, workdir).state


def run(cfg: Config, workdir: str) -> RunResult:
    """:func:`train`, also returning the data and why the run stopped. With ``train.seeds``,
    :func:`s2s_jax.seeds.run_seeds` trains them all in one program (its result holds seed
    states stacked on a leading axis)."""
    if cfg.train.seeds:
        return run_seeds(cfg, workdir)
    initialize_distributed()  # before anything touches a device; a no-op unless S2S_DISTRIBUTED=1
    cfg = resolve_dtype(cfg)  # the run records the dtype it trains in, not "auto"
    check_workdir_config(workdir, cfg)  # (only reads: a refused workdir is left untouched)
    par = Parallel(cfg)  # every device of every host; each host reads its rows of each batch
    with workdir_lock(workdir, enabled=par.is_main_process):
        data, batches = main_process_first(lambda: load_data(cfg, workdir, multiple=par.multiple,
                                                             process_index=par.process_index,
                                                             process_count=par.process_count))
        cfg, tcfg = data.config, data.config.train
        total = total_steps(cfg, batches.steps_per_epoch)
        with Checkpointer(workdir, tcfg.keep_checkpoints) as ckpt, \
                MetricsWriter(workdir, enabled=par.is_main_process) as metrics:
            state, rng, book = restore_or_start(cfg, workdir, par, ckpt, batches, metrics)
            if int(state.step) >= total:
                log.info("%s already holds a finished run (step %d).", workdir, int(state.step))
                return RunResult(state, data, "finished")
            clock, watch, stopped = Clock(book.minutes), LossWatch(ckpt), "finished"
            with (Stop(ckpt, tcfg.max_minutes).installed() as stop,
                  TrainLog([metrics], batches, total, clock, tcfg.quiet, initial=int(state.step)) as train_log):
                for step in range(int(state.step), total):
                    batch = next(batches)
                    state, m = par.train_step(state, par.shard_batch({"src": batch["src"], "tgt": batch["tgt"]}),
                                              jax.random.fold_in(rng, step))
                    done = step + 1
                    watch.add(done, m)
                    train_log.add(m)
                    if done % tcfg.log_every == 0:
                        watch.check()
                        train_log.write(done, m)
                    scores = None
                    if done % tcfg.eval_every == 0 or done == total:
                        watch.check()
                        scores = evaluate_split(state, data, "validation", done, metrics, clock, par)
                        plateau = after_evaluation(tcfg, state.plateau, scores["loss"])
                        state = state.replace(plateau=par.replicate(plateau))
                    new_best = scores is not None and better(tcfg.best_metric, scores[tcfg.best_metric], book.best)
                    if new_best:
                        book.best = scores[tcfg.best_metric]
                    reason = stop.reason(done, clock)  # read once: the save and the exit agree
                    if new_best or done % tcfg.checkpoint_every == 0 or done == total or reason:
                        watch.check()
                        best = (tcfg.best_metric, book.best) if new_best else None
                        save(ckpt, state, rng, batches, book, clock, best)
                    if reason:
                        stopped = reason
                        break
            watch.check()
            if stopped == "finished":
                evaluate_split(state, data, "test", total, metrics, clock, par)
    return RunResult(state, data, stopped)


