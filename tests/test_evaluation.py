"""Corpus scores against sacrebleu's own figures, and the helpers of s2s-eval."""

from __future__ import annotations

import pytest
import sacrebleu

from s2s_jax.config import DataConfig, DecodeConfig
from s2s_jax.errors import ConfigError
from s2s_jax.evaluation import corpus_scores, split_role

REFS = ["A man in an orange hat starring at something.", "A Boston Terrier is running on lush green grass.",
        "A girl in karate uniform breaking a stick with a front kick.", "Five people wearing winter jackets."]
HYPS = ["A man in an orange hat looks at something.", "A Boston terrier runs on green grass.",
        "A girl in a karate uniform breaks a board with a kick.", "Five people wearing winter jackets."]


def test_a_reference_against_itself_scores_100():
    scores = corpus_scores(REFS, REFS)
    assert scores["bleu"] == pytest.approx(100.0) and scores["chrf"] == pytest.approx(100.0)
    assert scores["exact_match"] == 1.0


def test_scores_match_sacrebleu():
    scores = corpus_scores(HYPS, REFS)
    bleu = sacrebleu.metrics.BLEU()
    chrf = sacrebleu.metrics.CHRF()
    assert scores["bleu"] == pytest.approx(bleu.corpus_score(HYPS, [REFS]).score, abs=1e-9)
    assert scores["chrf"] == pytest.approx(chrf.corpus_score(HYPS, [REFS]).score, abs=1e-9)
    assert scores["bleu"] == pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS]).score, abs=1e-9)
    assert 20 < scores["bleu"] < 90  # a non-trivial figure
    assert scores["bleu_signature"] == str(bleu.get_signature())
    assert "case:mixed" in scores["bleu_signature"] and "tok:13a" in scores["bleu_signature"]
    assert scores["chrf_signature"] == str(chrf.get_signature())
    assert scores["exact_match"] == 0.25


def test_hypotheses_and_references_must_pair_up():
    with pytest.raises(ValueError, match="3 hypotheses but 4 references"):
        corpus_scores(HYPS[:3], REFS)


def test_split_roles_by_role_or_name():
    cfg = DataConfig(splits=("train", "val", "test2016"))
    assert [split_role(cfg, s) for s in ("test", "test2016", "val", "validation", "train")] == [
        "test", "test", "validation", "validation", "train"]
    with pytest.raises(ConfigError, match=r"^split 'dev' is none of train, validation, test nor of the run's "
                                          r"data.splits \(train, val, test2016\)\.$"):
        split_role(cfg, "dev")


def test_beam_size_flag_picks_the_strategy():
    base = DecodeConfig(strategy="greedy", beam_size=5, n_best=2, max_len_b=9)
    assert base.with_beam_size(None) == base
    assert DecodeConfig(strategy="beam").with_beam_size(1).strategy == "greedy"
    beam = base.with_beam_size(3)
    assert (beam.strategy, beam.beam_size, beam.n_best, beam.max_len_b) == ("beam", 3, 1, 9)
