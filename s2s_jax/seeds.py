"""``train.seeds``: many seeds of one config trained together, one compiled step for all.

The train states of the seeds are stacked on a leading axis and the train step is mapped over
it (:mod:`s2s_jax.training.seeds`); every seed sees the same batches (those of ``train.seed``),
or with ``train.seed_data_order`` the data order of its own seed (batches padded to a common
shape per step); the loop of a single run (:func:`s2s_jax.loop.run`) advances them. Each seed
is a run directory of its own, ``WORKDIR/seed_N``, with the config of a single run with
``train.seed`` N, its tokenizers, metrics, TensorBoard events and its latest and best
checkpoints, so that ``s2s-eval``, ``s2s-translate``, ``Translator`` and ``s2s.restore`` read
it as any run. ``WORKDIR`` holds the shared config and tokenizers and the
writer lock. The seeds save at the same steps, so a resume restores all of them from their
common latest checkpoint, exactly. A non-finite loss in any seed stops the whole run, naming
the seed (its siblings' last checkpoints are kept): an ablation needs every seed it was given.
Before training, the compiled step's memory for the largest batch shape is checked against
the device's.
"""

from __future__ import annotations

import contextlib
import os

import jax
import numpy as np

from s2s_jax.checkpoint import Checkpointer, check_workdir_config
from s2s_jax.config import Config
from s2s_jax.data.dataset import Data
from s2s_jax.data.pipeline import BatchIterator, pad_rows, rows_per_batch
from s2s_jax.errors import CheckpointError, ConfigError
from s2s_jax.fileio import atomic_write_text, human_size
from s2s_jax.loop_parts import Group, Member, restore_or_start
from s2s_jax.parallel import Parallel
from s2s_jax.summary import MetricsWriter
from s2s_jax.training import seeds as seeds_lib
from s2s_jax.training.step import TrainState
from s2s_jax.vocab import save_tokenizers


def seed_dir(workdir: str, seed: int) -> str:
    return os.path.join(workdir, f"seed_{seed}")


def seed_config(cfg: Config, seed: int) -> Config:
    """The config of seed ``seed`` of a many-seed run: that of a single run with that seed."""
    return cfg.replace(train={"seed": seed, "seeds": (), "seed_data_order": False})


def start_seeds(stack: contextlib.ExitStack, cfg: Config, workdir: str, data: Data, shared: BatchIterator,
                par: Parallel, total: int) -> Group:
    """The :class:`~s2s_jax.loop_parts.Group` of every seed of ``cfg.train.seeds`` in ``workdir``,
    started or resumed together; ``shared`` gives the batches of ``train.seed``."""
    tcfg, seeds = cfg.train, cfg.train.seeds
    placement = dict(multiple=par.multiple, process_index=par.process_index, process_count=par.process_count)
    atomic_write_text(os.path.join(workdir, "config.json"), cfg.to_json())
    configs, dirs = [seed_config(cfg, s) for s in seeds], [seed_dir(workdir, s) for s in seeds]
    for c, d in zip(configs, dirs, strict=True):  # every seed's workdir is checked before any is written
        check_workdir_config(d, c)
    members = []
    for seed, c, d in zip(seeds, configs, dirs, strict=True):
        save_tokenizers(d, data.src_tokenizer, data.tgt_tokenizer, cfg.data)
        batches = BatchIterator(data.splits["train"], cfg.data, seed=seed, **placement) if tcfg.seed_data_order \
            else shared
        ckpt = stack.enter_context(Checkpointer(d, tcfg.keep_checkpoints))
        writer = stack.enter_context(MetricsWriter(d, enabled=par.is_main_process))
        state, rng, book = restore_or_start(c, d, par, ckpt, batches, writer)
        members.append((Member(c, ckpt, writer, batches, book), state, rng))
    steps = sorted({int(state.step) for _, state, _ in members})
    if len(steps) > 1:
        raise CheckpointError(f"the seeds in {workdir} were saved at different steps ({steps}); delete the "
                              f"checkpoints after step {steps[0]} to resume them together.")
    # One program for all: the static parts (config, model, optimizer) of the first seed.
    first = members[0][1]
    states = seeds_lib.stack([s.replace(config=first.config, model=first.model, tx=first.tx, lr_fn=first.lr_fn)
                              for _, s, _ in members])
    rngs = seeds_lib.stack([r for _, _, r in members])
    per_seed = tcfg.seed_data_order
    if steps[0] < total:
        check_memory(par, cfg, states, rngs, per_seed)
    batches = [m.batches for m, _, _ in members]

    def train_step(states: TrainState, rngs: jax.Array, step: int) -> tuple[TrainState, dict]:
        return par.seeds_train_step(states, next_batch(batches, per_seed, par), seeds_lib.step_keys(rngs, step),
                                    per_seed)

    return Group([m for m, _, _ in members], states, rngs, train_step, par, stacked=True)


def next_batch(batches: list[BatchIterator], per_seed: bool, par: Parallel) -> dict:
    """The step's batch: the shared one, or each seed's stacked, padded to their common shape."""
    if not per_seed:
        batch = next(batches[0])
        return par.shard_batch({"src": batch["src"], "tgt": batch["tgt"]})
    each = [next(b) for b in batches]
    stacked = {}
    for key in ("src", "tgt"):
        width = max(b[key].shape[1] for b in each)
        rows = max(b[key].shape[0] for b in each)
        stacked[key] = np.stack([pad_rows(list(b[key]), width, rows) for b in each])
    return par.shard_seed_batches(stacked)


def check_memory(par: Parallel, cfg: Config, states, rngs, per_seed: bool) -> None:
    """Refuse, before training, a number of seeds whose train step (compiled for the largest
    batch shape) needs more memory than the device has."""
    longest = cfg.data.max_len
    rows = rows_per_batch(cfg.data, longest, longest, par.multiple) // par.process_count
    batch = {"src": np.zeros((rows, longest), np.int32), "tgt": np.zeros((rows, longest + 1), np.int32)}
    n = len(cfg.train.seeds)
    if per_seed:
        batch = par.shard_seed_batches({k: np.stack([v] * n) for k, v in batch.items()})
    else:
        batch = par.shard_batch(batch)
    try:
        analysis = par.seeds_step(per_seed).lower(states, batch, seeds_lib.step_keys(rngs, 0)).compile() \
            .memory_analysis()
    except (AttributeError, NotImplementedError):  # a backend that reports no memory analysis
        return
    if analysis is None:
        return
    need = (analysis.argument_size_in_bytes + analysis.output_size_in_bytes + analysis.temp_size_in_bytes
            - analysis.alias_size_in_bytes)
    limit = device_memory()
    if limit is not None and need > limit:
        raise ConfigError(f"train.seeds: the train step of {n} seeds needs about {human_size(need)} for the largest "
                          f"batch shape, more than the {human_size(limit)} available on {jax.devices()[0].platform}; "
                          "use fewer seeds or smaller batches.")


def device_memory() -> int | None:
    """Bytes one device can use: an accelerator's limit, or the CPU's available memory."""
    device = jax.local_devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"])
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
