"""The paper presets, their runner (experiments/paper.py) and the results table (experiments/results_table.py)."""

from __future__ import annotations

import json
import os
import sys

import pytest

import s2s_jax as s2s

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "experiments"))
import paper
import results_table

from s2s_jax.significance import welch

PAPERS = {
    "sutskever2014": dict(cell="lstm", reverse_source=True, attention="none", context_every_step=False),
    "cho2014": dict(cell="gru", attention="none", context_every_step=True),
    "bahdanau2015": dict(cell="gru", bidirectional=True, attention="additive", attention_style="bahdanau"),
    "luong2015": dict(cell="lstm", attention="general", attention_style="luong", input_feeding=True),
    "scheduled_sampling": dict(attention="additive"),
}


@pytest.mark.parametrize("name", sorted(PAPERS))
def test_paper_presets_and_their_multi30k_twins_keep_the_architecture(name):
    small, large = s2s.get_preset(name), s2s.get_preset(f"{name}_multi30k")
    for field, value in PAPERS[name].items():
        assert getattr(small.model, field) == value and getattr(large.model, field) == value, field
    assert small.data.source == "dates"
    assert large.data == s2s.get_preset("multi30k").data
    assert (large.model.hidden_size, large.model.embed_dim) == (512, 256)
    assert large.train.scheduled_sampling == small.train.scheduled_sampling or name == "scheduled_sampling"
    if name == "scheduled_sampling":
        assert small.train.scheduled_sampling.schedule == large.train.scheduled_sampling.schedule == "inverse_sigmoid"


def test_runner_trains_scores_and_reports_the_command(tmp_path, capsys):
    workdir = str(tmp_path / "cho")
    argv = ["--workdir", workdir, "--train.num-steps", "30", "--train.eval-every", "30", "--train.quiet",
            "--model.hidden-size", "16", "--model.embed-dim", "8", "--data.synthetic-sizes", "300", "40", "40",
            "--data.bucket-lengths", "32", "--beam-size", "3"]
    [row] = paper.main("cho2014", "doc", argv)
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == row
    with open(os.path.join(workdir, "result.json")) as f:
        assert json.load(f) == row
    assert row["preset"] == "cho2014" and row["steps"] == 30 and row["test_split"] == "test"
    assert row["command"].endswith(" ".join(argv))
    for tag in ("greedy", "beam3"):  # the scores evaluate_workdir wrote beside its hypotheses
        [scores] = [f for f in os.listdir(os.path.join(workdir, "eval")) if f.endswith(f"-{tag}.scores.json")]
        with open(os.path.join(workdir, "eval", scores)) as f:
            assert row[f"test_bleu_{tag}"] == round(json.load(f)["bleu"], 2)
    assert row["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")


def test_runner_data_option_picks_the_multi30k_twin(monkeypatch):
    seen = {}

    def fake_run(cfg, workdir):
        seen["cfg"], seen["workdir"] = cfg, workdir
        raise SystemExit(0)

    monkeypatch.setattr(paper, "run", fake_run)
    with pytest.raises(SystemExit):
        paper.main("luong2015", "doc", ["--data", "corpus/dir", "--model.attention", "dot"])
    cfg = seen["cfg"]
    assert cfg.name == "luong2015_multi30k" and cfg.data.source == "corpus/dir" and cfg.model.attention == "dot"
    assert seen["workdir"] == "runs/luong2015_multi30k"


def test_results_table_pools_the_seeds_of_a_run(tmp_path, monkeypatch, capsys):
    def write(name: str, exact: float, bleu: float, minutes: float) -> None:
        (tmp_path / name).mkdir(parents=True)
        row = {"steps": 300, "params": 1234, "train_minutes": minutes, "test_exact_match_greedy": exact,
               "test_exact_match_beam5": exact, "test_bleu_greedy": bleu, "test_bleu_beam5": bleu}
        (tmp_path / name / "result.json").write_text(json.dumps(row))

    for seed, exact in enumerate((0.2, 0.3, 0.4, 0.5)):  # a many-seed run: RUN/seed_N
        write(f"many/seed_{seed}", exact, 50.0, 1.0)
    write("score_dot_seed0", 0.5, 90.0, 1.0)
    write("score_dot_seed1", 0.7, 94.0, 2.0)
    write("single", 0.25, 80.0, 3.0)
    (tmp_path / "unfinished").mkdir()
    monkeypatch.setattr(sys, "argv", ["results_table.py", str(tmp_path)])
    results_table.main()
    header, rule, many, *rows = capsys.readouterr().out.splitlines()
    assert len(rule.split("|")) == len(header.split("|"))
    assert many.startswith("| many | 4 | 300 | 1.0 | 35.00 ± 12.91 [14.46, 55.54] | ")  # t(0.975, 3) = 3.182
    # 95% interval of two seeds: mean ± t(0.975, 1) * sd / sqrt(2), t = 12.706.
    assert rows == [
        "| score_dot | 2 | 300 | 1.5 | 60.00 ± 14.14 [-67.06, 187.06] (50.0 / 70.0) | 60.00 ± 14.14 [-67.06, 187.06] "
        "(50.0 / 70.0) | 92.00 ± 2.83 [66.59, 117.41] (90.0 / 94.0) | 92.00 ± 2.83 [66.59, 117.41] (90.0 / 94.0) "
        "| 1,234 |",
        "| single | 1 | 300 | 3.0 | 25.00 | 25.00 | 80.00 | 80.00 | 1,234 |"]
    monkeypatch.setattr(sys, "argv", ["results_table.py", str(tmp_path), "--bleu-only"])
    results_table.main()
    header, _, _, _, single = capsys.readouterr().out.splitlines()
    assert header == "| run | seeds | steps | train min | BLEU greedy | beam 5 | params |"
    assert single == "| single | 1 | 300 | 3.0 | 80.00 | 80.00 | 1,234 |"


def test_results_table_compares_two_runs_with_welchs_test(tmp_path, monkeypatch, capsys):
    for name, values in (("a", (0.90, 0.92, 0.94)), ("b", (0.99, 0.995, 1.0))):
        for seed, v in enumerate(values):
            (tmp_path / name / f"seed_{seed}").mkdir(parents=True)
            row = {"steps": 300, "params": 1, "train_minutes": 1.0, "test_exact_match_greedy": v,
                   "test_exact_match_beam5": v, "test_bleu_greedy": 99.0, "test_bleu_beam5": 99.0}
            (tmp_path / name / f"seed_{seed}" / "result.json").write_text(json.dumps(row))
    monkeypatch.setattr(sys, "argv", ["results_table.py", str(tmp_path), "--compare", "a", "b"])
    results_table.main()
    lines = capsys.readouterr().out.splitlines()
    compared = [line for line in lines if line.startswith("| a vs b | ")]
    t = welch([90.0, 92.0, 94.0], [99.0, 99.5, 100.0])
    assert compared[0] == (f"| a vs b | test_exact_match_greedy | -7.50 | {t.t:.2f} | {t.dof:.1f} | {t.p:.3g} | yes |")
    assert compared[2] == "| a vs b | test_bleu_greedy | +0.00 | 0.00 | 4.0 | 1 | no |"
