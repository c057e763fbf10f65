"""The training loop on the copy task: it learns, and it leaves a complete record."""

from __future__ import annotations

import json
import os

import pytest

import s2s_jax as s2s
from s2s_jax.data.dataset import prepare_data
from s2s_jax.errors import ConfigError
from s2s_jax.loop import run
from s2s_jax.summary import read_metrics
from tests.conftest import run_optimised

pytestmark = pytest.mark.xdist_group("copy_run")  # one worker trains the copy run for all


def copy_config():
    cfg = s2s.get_preset("copy")
    return cfg.replace(model={"hidden_size": 64, "embed_dim": 16, "attention": "dot"},
                       data={"synthetic_sizes": (20000, 200, 200), "batch_size": 128},
                       train={"num_steps": 500, "eval_every": 250, "checkpoint_every": 250, "learning_rate": 1e-2,
                              "lr_schedule": "rsqrt", "warmup_steps": 100, "log_every": 125, "quiet": True})


@pytest.fixture(scope="session")  # module scope is rebuilt when xdist interleaves other modules
def copy_run(tmp_path_factory) -> str:
    workdir = str(tmp_path_factory.mktemp("copy"))
    run_optimised(copy_config(), workdir)
    return workdir


def test_copy_task_is_learnt(copy_run):
    workdir = copy_run
    test = [m for m in read_metrics(workdir) if m["split"] == "test"]
    assert len(test) == 1 and test[0]["examples"] == 200
    assert test[0]["exact_match"] == 1.0


def test_run_leaves_config_metrics_and_checkpoints(copy_run):
    workdir = copy_run
    with open(os.path.join(workdir, "config.json")) as f:
        saved = s2s.Config.from_dict(json.load(f))
    data = prepare_data(copy_config(), workdir, ("test",))  # the run's tokenizers, read back
    assert saved == data.config and saved.model.src_vocab_size == data.src_tokenizer.vocab_size
    records = read_metrics(workdir)
    assert [(r["step"], r["split"]) for r in records] == [
        (125, "train"), (250, "train"), (250, "validation"), (375, "train"), (500, "train"),
        (500, "validation"), (500, "test")]
    for r in records:
        keys = {"loss", "token_accuracy", "minutes"} | (
            {"bleu", "chrf", "exact_match", "perplexity"} if r["split"] != "train"
            else {"learning_rate", "grad_norm", "tokens_per_s", "teacher_forcing_prob"})
        assert keys <= set(r)
    minutes = [r["minutes"] for r in records]
    assert minutes == sorted(minutes) and 0 < minutes[-1] < 30
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints")), key=int) == ["250", "500"]


def test_workdir_with_another_config_is_refused_and_left_alone(copy_run):
    workdir = copy_run
    before = {f: os.path.getmtime(os.path.join(workdir, f)) for f in ("config.json", "metrics.jsonl")}
    with pytest.raises(ConfigError, match=r"model\.hidden_size=64, not 32"):
        run(copy_config().replace(model={"hidden_size": 32}), workdir)
    assert before == {f: os.path.getmtime(os.path.join(workdir, f)) for f in before}


def test_finished_run_is_not_retrained(copy_run):
    workdir = copy_run
    n = len(read_metrics(workdir))
    result = run(copy_config(), workdir)
    assert int(result.state.step) == 500 and len(read_metrics(workdir)) == n
