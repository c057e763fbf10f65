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

import contextlib
import logging

from s2s_jax.checkpoint import check_workdir_config
from s2s_jax.config import Config
from s2s_jax.data.pipeline import load_data
from s2s_jax.fileio import workdir_lock
from s2s_jax.hugepages import describe as describe_host_memory
from s2s_jax.loop_parts import Clock, LossWatch, RunResult, Stop, TrainLog, evaluate_split, start_one, total_steps
from s2s_jax.parallel import Parallel, initialize_distributed, main_process_first
from s2s_jax.precision import resolve_dtype
from s2s_jax.seeds import start_seeds
from s2s_jax.training.step import TrainState

log = logging.getLogger("s2s_jax")


def train(cfg: Config, workdir: str) -> TrainState:
    """Train ``cfg`` in ``workdir`` (resuming a checkpoint there); returns the final state."""
    return run(cfg, workdir).state


def run(cfg: Config, workdir: str) -> RunResult:
    """:func:`train`, also returning the data and why the run stopped. With ``train.seeds`` the
    seeds train together in one program (:mod:`s2s_jax.seeds`), and the result holds their
    states stacked on a leading axis."""
    initialize_distributed()  # before anything touches a device; a no-op unless S2S_DISTRIBUTED=1
    cfg = resolve_dtype(cfg)  # the run records the dtype it trains in, not "auto"
    log.info("%s.", describe_host_memory())
    check_workdir_config(workdir, cfg)  # (only reads: a refused workdir is left untouched)
    par = Parallel(cfg)  # every device of every host; each host reads its rows of each batch
    with workdir_lock(workdir, enabled=par.is_main_process):
        data, batches = main_process_first(lambda: load_data(cfg, workdir, multiple=par.multiple,
                                                             process_index=par.process_index,
                                                             process_count=par.process_count))
        cfg, tcfg = data.config, data.config.train
        total = total_steps(cfg, batches.steps_per_epoch)
        with contextlib.ExitStack() as stack:
            group = start_seeds(stack, cfg, workdir, data, batches, par, total) if tcfg.seeds \
                else start_one(stack, cfg, workdir, batches, par)
            runs, first = range(len(group.members)), group.members[0]
            if group.step >= total:
                log.info("%s already holds a finished run (step %d).", workdir, group.step)
                return RunResult(group.state, data, "finished")
            clock, watch, stopped = Clock(first.book.minutes), LossWatch(first.ckpt, tcfg.seeds), "finished"
            with (Stop(first.ckpt, tcfg.max_minutes).installed() as stop,
                  TrainLog([m.writer for m in group.members], first.batches, total, clock, tcfg.quiet,
                           initial=group.step) as train_log):
                for step in range(group.step, total):
                    m = group.advance(step)
                    done = step + 1
                    watch.add(done, m)
                    train_log.add(m)
                    if done % tcfg.log_every == 0:
                        watch.check()
                        train_log.write(done, m)
                    new_best = [False for _ in runs]
                    if done % tcfg.eval_every == 0 or done == total:
                        watch.check()
                        new_best = [group.validate(i, data, done, clock) for i in runs]
                    reason = stop.reason(done, clock)  # read once: the save and the exit agree
                    checkpoint = done % tcfg.checkpoint_every == 0 or done == total or reason
                    for i in runs:
                        if new_best[i] or checkpoint:
                            watch.check()
                            group.save(i, clock, new_best[i])
                    if reason:
                        stopped = reason
                        break
            watch.check()
            if stopped == "finished":
                for i in runs:
                    evaluate_split(group.member_state(i), data, "test", total, group.members[i].writer, clock, par)
    return RunResult(group.state, data, stopped)
