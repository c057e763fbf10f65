"""train.seeds: seed k of an N-seed run is the single run with seed k, the seeds differ, a
resumed N-seed run is bitwise the uninterrupted one, each seed's directory is a run the tools
read, and bad seed lists are refused in one sentence."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

import s2s_jax as s2s
import s2s_jax.seeds as seeds_module
from s2s_jax.errors import ConfigError
from s2s_jax.loop import run
from s2s_jax.parallel import Parallel
from s2s_jax.summary import read_metrics

pytestmark = pytest.mark.xdist_group("seeds")  # module fixtures built once

SEEDS = (0, 1, 2)


def config(**train) -> s2s.Config:
    """Dropout and sampled scheduled sampling, so every seed's keys matter; one bucket."""
    return s2s.get_preset("copy").replace(
        model={"embed_dim": 8, "hidden_size": 16, "dropout": 0.3},
        data={"synthetic_sizes": (48, 8, 8), "batch_size": 8, "bucket_lengths": (16,), "eval_batch_size": 8},
        train={"num_steps": 12, "eval_every": 6, "checkpoint_every": 4, "log_every": 3, "learning_rate": 0.05,
               "lr_schedule": "plateau", "plateau_patience": 1, "best_metric": "loss",
               "scheduled_sampling": s2s.ScheduledSamplingConfig(schedule="linear", k=1.0, c=0.05, mode="sample"),
               "quiet": True, **train},
        decode={"max_len_b": 14})


def params_of(workdir: str):
    return s2s.restore(workdir, "latest").state.params


def close(a, b) -> bool:
    return all(np.allclose(x, y, rtol=1e-4, atol=1e-5)
               for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True))


def equal(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b),
                                                     strict=True))


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("seeds"))
    return workdir, run(config(seeds=SEEDS, seed_data_order=True), workdir)


@pytest.mark.parametrize("seed", [1, 2])
def test_seed_k_equals_the_single_run_with_seed_k(many, seed, tmp_path):
    workdir, _ = many
    single = run(config(seed=seed), str(tmp_path))
    assert close(params_of(os.path.join(workdir, f"seed_{seed}")), single.state.params)
    ours = [(r["step"], r["split"]) for r in read_metrics(os.path.join(workdir, f"seed_{seed}"))]
    assert ours == [(r["step"], r["split"]) for r in read_metrics(str(tmp_path))]


def test_shared_data_order_is_that_of_train_seed(tmp_path):
    shared = run(config(seeds=(3, 5), seed=5, num_steps=6), str(tmp_path / "many"))
    single = run(config(seed=5, num_steps=6), str(tmp_path / "single"))
    assert close(jax.tree_util.tree_map(lambda x: x[1], shared.state.params), single.state.params)


def test_seeds_differ_and_each_directory_is_a_run(many):
    workdir, result = many
    first, second = (params_of(os.path.join(workdir, f"seed_{s}")) for s in SEEDS[:2])
    assert not close(first, second)
    assert equal(jax.tree_util.tree_map(lambda x: x[0], result.state.params), first)
    seed_dir = os.path.join(workdir, "seed_2")
    restored = s2s.restore(seed_dir)
    assert restored.config.train.seed == 2 and restored.config.train.seeds == ()
    in_memory = s2s.Translator.from_state(jax.tree_util.tree_map(lambda x: x[2], result.state),
                                          result.data.src_tokenizer, result.data.tgt_tokenizer)
    sources = result.data.splits["test"].raw_src
    assert s2s.Translator.from_workdir(seed_dir, "latest").translate(sources, beam_size=2) == in_memory.translate(
        sources, beam_size=2)
    assert [r["split"] for r in read_metrics(seed_dir)].count("test") == 1


def test_an_interrupted_many_seed_run_resumes_bitwise(many, tmp_path, monkeypatch):
    workdir, _ = many
    real = Parallel.seeds_train_step

    def interrupted(self, states, batch, keys, batch_per_seed=False):
        states, m = real(self, states, batch, keys, batch_per_seed)
        if int(states.step[0]) == 5:
            os.kill(os.getpid(), signal.SIGTERM)
        return states, m

    monkeypatch.setattr(Parallel, "seeds_train_step", interrupted)
    first = run(config(seeds=SEEDS, seed_data_order=True), str(tmp_path))
    assert first.stopped == "signal" and int(first.state.step[0]) == 5
    monkeypatch.setattr(Parallel, "seeds_train_step", real)
    run(config(seeds=SEEDS, seed_data_order=True), str(tmp_path))
    for s in SEEDS:
        assert equal(params_of(os.path.join(tmp_path, f"seed_{s}")), params_of(os.path.join(workdir, f"seed_{s}")))
        ours, ref = (read_metrics(os.path.join(d, f"seed_{s}")) for d in (tmp_path, workdir))
        assert [(r["step"], r["split"], r.get("loss")) for r in ours] == [(r["step"], r["split"], r.get("loss"))
                                                                         for r in ref]


def test_duplicate_seeds_are_refused():
    with pytest.raises(ConfigError, match=r"^train\.seeds names seed 1 twice; give each seed once\.$"):
        config(seeds=(0, 1, 1))


def test_an_empty_seed_list_on_the_command_line_is_refused():
    done = subprocess.run([os.path.join(os.path.dirname(sys.executable), "s2s-train"), "--workdir", "unused",
                           "--train.seeds"], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["s2s-train: error: argument --train.seeds: expected at least one "
                                                "argument"]


def test_more_seeds_than_memory_fail_before_training_with_the_estimate(tmp_path, monkeypatch):
    monkeypatch.setattr(seeds_module, "device_memory", lambda: 2**10)
    with pytest.raises(ConfigError, match=r"^train\.seeds: the train step of 3 seeds needs about [\d.]+ [KMG]iB "
                                          r"for the largest batch shape, more than the 1\.0 KiB available on cpu; "
                                          r"use fewer seeds or smaller batches\.$"):
        run(config(seeds=SEEDS), str(tmp_path))
    assert glob.glob(str(tmp_path / "seed_*" / "checkpoints" / "*")) == []
    assert all(read_metrics(str(tmp_path / f"seed_{s}")) == [] for s in SEEDS)
