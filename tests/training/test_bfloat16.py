"""bfloat16 training end to end: the copy task is learnt, and the run's dtype travels with its
checkpoints, so a Translator decodes in the precision the model was trained in."""

from __future__ import annotations

import pytest

import s2s_jax as s2s
from s2s_jax.loop import run
from s2s_jax.summary import read_metrics
from tests.test_loop import copy_config

pytestmark = pytest.mark.xdist_group("copy_run_bf16")


@pytest.fixture(scope="session")
def bf16_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("copy_bf16"))
    # With the float32 test's 64 units, bfloat16 leaves one to three of the 200 test sentences
    # wrong at 500 and 750 steps (an Intel CPU with AMX), and two at 1000 and 1500 on an AMD
    # CPU without bfloat16 units (a repeated letter dropped, "nuujk" -> "nujk"); 96 units learn
    # it by 1000 steps there, and by 1500 on an AMD Zen 5 with AVX512-BF16 (0.985 at 1000). On a
    # Zen 4 a change of the gradient norm's summation order left one test sentence wrong at 1500
    # steps (validation 1.0 from step 1000); 2000 steps learn it there.
    cfg = copy_config().replace(model={"dtype": "bfloat16", "hidden_size": 96}, train={"num_steps": 2000})
    return workdir, run(cfg, workdir)


def test_bfloat16_copy_task_is_learnt(bf16_run):
    workdir, _ = bf16_run
    test = [m for m in read_metrics(workdir) if m["split"] == "test"]
    assert len(test) == 1 and test[0]["exact_match"] == 1.0


def test_translator_restores_the_runs_dtype(bf16_run):
    workdir, result = bf16_run
    tested = next(m["step"] for m in read_metrics(workdir) if m["split"] == "test")
    translator = s2s.Translator.from_workdir(workdir, tested)
    assert translator.config.model.dtype == translator.model.cfg.dtype == "bfloat16"
    test = result.data.splits["test"]
    assert translator.translate(test.raw_src[:32], beam_size=1) == test.raw_tgt[:32]
