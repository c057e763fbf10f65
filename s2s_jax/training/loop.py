"""``train(config, workdir)``: the whole training run, resumable.

Data -> batches -> ``train_step`` -> periodic evaluation (loss, perplexity,
token accuracy, BLEU/chrF/exact match of decodes) -> ``metrics.jsonl`` and
checkpoints. A workdir with a checkpoint is resumed from it: parameters,
optimizer state, data position and PRNG key continue exactly. SIGTERM or
SIGINT finish the current step, save and return; a second signal exits at
once (checkpoints are written atomically, so nothing is corrupted). A
non-finite loss stops the run before anything is saved from it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import signal
import time

import jax
import numpy as np

from s2s_jax.checkpoint import Checkpointer, check_workdir_config
from s2s_jax.config import Config
from s2s_jax.data.dataset import Data, prepare_data
from s2s_jax.data.pipeline import BatchIterator
from s2s_jax.errors import NonFiniteLossError
from s2s_jax.evaluation import evaluate
from s2s_jax.fileio import atomic_write_text
from s2s_jax.parallel import Parallel, initialize_distributed, main_process_first
from s2s_jax.plots import attention_examples
from s2s_jax.precision import resolve_dtype
from s2s_jax.summary import MetricsWriter, progress, read_metrics
from s2s_jax.training.schedules import plateau_update
from s2s_jax.training.step import TrainState, create_train_state

log = logging.getLogger("s2s_jax")

LOWER_IS_BETTER = ("loss", "perplexity")
EXAMPLES_PER_EVAL = 4  # sample translations (and heatmaps) shown in TensorBoard per evaluation


@dataclasses.dataclass
class RunResult:
    state: TrainState
    data: Data
    stopped: str  # "finished" | "signal" | "time"


class _Interrupts:
    """First SIGTERM/SIGINT: ask the loop to stop after the current step. Second: exit now."""

    def __init__(self):
        self.requested: int | None = None

    def _handle(self, signum, frame):
        self.requested = signum
        # The second signal gets the default disposition, which ends the process at once even
        # while it waits in compiled code or on a save, where Python handlers cannot run.
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, signal.SIG_DFL)

    @contextlib.contextmanager
    def installed(self):
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


def _better(metric: str, value: float, best: float | None) -> bool:
    if best is None:
        return True
    return value < best if metric in LOWER_IS_BETTER else value > best


def _total_steps(cfg: Config, steps_per_epoch: int) -> int:
    if cfg.train.num_epochs > 0:
        return math.ceil(cfg.train.num_epochs * steps_per_epoch)
    return cfg.train.num_steps


def train(cfg: Config, workdir: str) -> TrainState:
    """Train ``cfg`` in ``workdir`` (resuming a checkpoint there); returns the final state."""
    return run(cfg, workdir).state


def run(cfg: Config, workdir: str) -> RunResult:
    """:func:`train`, also returning the data and why the run stopped."""
    initialize_distributed()  # before anything touches a device; a no-op unless S2S_DISTRIBUTED=1
    cfg = resolve_dtype(cfg)  # the run records the dtype it trains in, not "auto"
    os.makedirs(workdir, exist_ok=True)
    check_workdir_config(workdir, cfg)
    data = main_process_first(lambda: prepare_data(cfg, workdir))
    cfg = data.config
    tcfg = cfg.train
    par = Parallel(cfg)  # every device of every host; each host reads its rows of each batch
    batches = BatchIterator(data.splits["train"], cfg.data, seed=tcfg.seed, multiple=par.multiple,
                            process_index=par.process_index, process_count=par.process_count)
    total = _total_steps(cfg, batches.steps_per_epoch)
    init_key, rng = jax.random.split(jax.random.key(tcfg.seed))
    state = par.replicate(create_train_state(cfg, init_key, batches.steps_per_epoch))
    rng = par.replicate(rng)  # checkpoints restore into these placements
    metrics = MetricsWriter(workdir, enabled=par.is_main_process)
    ckpt = Checkpointer(workdir, tcfg.keep_checkpoints)
    loop = {"plateau": {"best": float("inf"), "bad": 0, "scale": 1.0}, "best": None, "minutes": 0.0}
    config_path = os.path.join(workdir, "config.json")
    if ckpt.latest.latest_step() is not None:
        state, rng, meta = ckpt.restore(state, rng)
        batches.set_state(meta["data_iterator"])
        loop = meta["loop"]
        if not os.path.exists(config_path):  # lost; the guard above read the checkpoint's copy
            atomic_write_text(config_path, Config.from_dict(meta["config"]).to_json())
        metrics.truncate_after(int(state.step))
        log.info("Resumed %s at step %d.", workdir, int(state.step))
    else:
        metrics.truncate_after(0)  # records of an earlier attempt that never reached a checkpoint
        atomic_write_text(config_path, cfg.to_json())
    best_step = ckpt.step_of("best")
    if best_step is not None and best_step > int(state.step):
        # Saved by the interrupted attempt after the checkpoint we resume from: the replay keeps
        # it unless it finds a better one, as the uninterrupted run would have.
        loop["best"] = ckpt.read_meta("best")["loop"]["best"]

    # Training minutes run on across resumes, so a time-to-quality curve spans its preemptions.
    # Checkpoints that predate the saved clock continue from the last metrics record kept.
    minutes_before = loop.get("minutes")
    if minutes_before is None:
        minutes_before = max((r["minutes"] for r in read_metrics(workdir) if "minutes" in r), default=0.0)
    t_start = time.perf_counter()  # of this attempt: train.max_minutes budgets each attempt

    def minutes() -> float:
        return minutes_before + (time.perf_counter() - t_start) / 60

    def save(best: bool = False) -> None:
        loop["minutes"] = minutes()
        meta = {"config": cfg.to_dict(), "data_iterator": batches.get_state(), "loop": loop}
        ckpt.save(state, rng, meta, best=best)

    start_step = int(state.step)
    if start_step >= total:
        log.info("%s already holds a finished run (step %d).", workdir, start_step)
        ckpt.close()
        metrics.close()
        return RunResult(state, data, "finished")
    # A live bar on a terminal; plain log lines (or nothing, when quiet) in a log file.
    bar = progress(total, "train", tcfg.quiet, initial=start_step)
    pending: list[tuple[int, jax.Array, jax.Array]] = []  # (step, loss, grad norm) not yet checked for NaN
    window = {"nll_sum": 0.0, "tokens": 0.0, "correct": 0.0, "t0": time.perf_counter()}
    stopped = "finished"

    def check_losses() -> None:
        """Raise on a non-finite loss, or gradient norm (whose update poisons the parameters)."""
        for step, *values in pending:
            for name, value in zip(("loss", "gradient norm"), values, strict=True):
                if not np.isfinite(float(value)):
                    kept = ckpt.step_of("latest")
                    raise NonFiniteLossError(
                        f"the training {name} became {float(value)} at step {step}; stopped without saving "
                        + ("(no checkpoint was saved yet)." if kept is None else f"(checkpoint {kept} is kept)."))
        pending.clear()

    def log_train(step: int, m: dict) -> None:
        elapsed = time.perf_counter() - window["t0"]
        tokens = float(window["tokens"])
        record = {"loss": float(m["loss"]), "nll": float(window["nll_sum"]) / max(tokens, 1.0),
                  "token_accuracy": float(window["correct"]) / max(tokens, 1.0), "grad_norm": float(m["grad_norm"]),
                  "learning_rate": float(m["learning_rate"]),
                  "teacher_forcing_prob": float(m["teacher_forcing_prob"]),
                  "tokens_per_s": tokens / max(elapsed, 1e-9), "epoch": batches.epoch_progress,
                  "minutes": minutes()}
        record["perplexity"] = math.exp(min(record["nll"], 50.0))
        metrics.write(step, "train", record)
        if bar.disable:
            log.info("step %d/%d loss %.4f %.0f tokens/s", step, total, record["loss"], record["tokens_per_s"])
        else:
            bar.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{record['tokens_per_s']:.0f}")
        window.update(nll_sum=0.0, tokens=0.0, correct=0.0, t0=time.perf_counter())

    def evaluate_split(step: int, name: str, limit: int = 0) -> dict:
        split = data.splits[name]
        with progress(min(limit, len(split)) if limit else len(split), name, tcfg.quiet, unit="sentence",
                      leave=False) as eval_bar:
            m, hyps = evaluate(state, split, data.tgt_tokenizer, cfg.decode, limit, eval_bar.update, par)
        metrics.write(step, name, {**m, "minutes": minutes()})
        log.info("step %d %s: loss %.4f bleu %.2f exact %.4f", step, name, m["loss"], m["bleu"], m["exact_match"])
        k = min(EXAMPLES_PER_EVAL, len(hyps))
        examples = []
        if cfg.model.attention != "none":
            examples = attention_examples(state, split, data.src_tokenizer, data.tgt_tokenizer, range(k), par)
        figures = {f"attention/{i}": ex.heatmap() for i, ex in enumerate(examples)} if metrics.enabled else {}
        metrics.write_examples(step, name, split.raw_src[:k], hyps[:k], split.raw_tgt[:k], figures)
        return m

    def run_eval(step: int) -> None:
        nonlocal state
        m = evaluate_split(step, "validation", tcfg.eval_max_examples)
        if tcfg.lr_schedule == "plateau":
            loop["plateau"], lowered = plateau_update(tcfg, loop["plateau"], m["loss"])
            if lowered:
                scale = jax.numpy.asarray(loop["plateau"]["scale"], jax.numpy.float32)
                state = state.replace(lr_scale=par.replicate(scale))
        value = m[tcfg.best_metric]
        if _better(tcfg.best_metric, value, loop["best"]):
            loop["best"] = value
            save(best=True)

    interrupts = _Interrupts()
    try:
        with interrupts.installed():
            for step in range(start_step, total):
                batch = next(batches)
                arrays = par.shard_batch({"src": batch["src"], "tgt": batch["tgt"]})
                state, m = par.train_step(state, arrays, jax.random.fold_in(rng, step))
                done = step + 1
                pending.append((done, m["loss"], m["grad_norm"]))
                for k in ("nll_sum", "tokens", "correct"):  # device values: no sync per step
                    window[k] = window[k] + m[k]
                bar.update(1)
                if done % tcfg.log_every == 0:
                    check_losses()
                    log_train(done, m)
                if done % tcfg.eval_every == 0 or done == total:
                    check_losses()
                    run_eval(done)
                out_of_time = tcfg.max_minutes > 0 and time.perf_counter() - t_start > 60 * tcfg.max_minutes
                # Read the signal flag once: one arriving between two reads would stop without a save.
                stop = "signal" if interrupts.requested else "time" if out_of_time else None
                if done % tcfg.checkpoint_every == 0 or done == total or stop:
                    check_losses()
                    save()
                if stop:
                    stopped = stop
                    break
            check_losses()
            if stopped == "finished":
                evaluate_split(int(state.step), "test")
            ckpt.wait()
    finally:
        bar.close()
        ckpt.close()
        metrics.close()
    return RunResult(state, data, stopped)
