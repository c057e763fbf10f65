"""Figures: the attention heatmap shows the given tokens and no PAD; the training
curves draw exactly the series in metrics.jsonl; both save PNGs."""

from __future__ import annotations

import json

import matplotlib.image
import numpy as np
import pytest

from s2s_jax.plots import attention_heatmap, training_curves


def test_heatmap_labels_axes_with_the_tokens_and_cuts_pad(tmp_path):
    rng = np.random.default_rng(0)
    weights = rng.random((6, 9))  # a padded batch row: 4 output and 5 source tokens are real
    src, out = ["▁a", "b", "c", "d", "</s>"], ["x", "y", "z", "</s>"]
    path = tmp_path / "sub" / "attention.png"
    fig = attention_heatmap(weights, src, out, title="a b c d", path=str(path))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == src
    assert [t.get_text() for t in ax.get_yticklabels()] == out
    np.testing.assert_array_equal(ax.images[0].get_array(), weights[:4, :5].astype(np.float32))
    assert ax.get_title() == "a b c d"
    width, height = fig.get_size_inches() * 100
    assert matplotlib.image.imread(str(path)).shape[:2] == (round(height), round(width))


def test_heatmap_refuses_weights_smaller_than_the_tokens():
    with pytest.raises(ValueError, match="do not cover 3 output and 2 source tokens"):
        attention_heatmap(np.ones((2, 2)), ["a", "b"], ["x", "y", "z"])


def records() -> list[dict]:
    return [
        {"step": 10, "split": "train", "loss": 2.5, "nll": 2.4},
        {"step": 20, "split": "train", "loss": 1.5, "nll": 1.6},
        {"step": 20, "split": "validation", "loss": 1.7, "bleu": 10.0, "exact_match": 0.25,
         "bleu_signature": "nrefs:1"},
        {"step": 30, "split": "train", "loss": 1.0, "nll": 1.1},
        {"step": 40, "split": "validation", "loss": 1.2, "bleu": 30.0, "exact_match": 0.5},
        {"step": 40, "split": "test", "loss": 1.3, "bleu": 29.0, "exact_match": 0.45},
    ]


def lines(fig) -> dict[str, tuple[list, list]]:
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for ax in fig.axes for line in ax.lines}


def test_training_curves_draw_the_series_of_metrics_jsonl(tmp_path):
    with open(tmp_path / "metrics.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in records())
    fig = training_curves(str(tmp_path), path=str(tmp_path / "curves.png"))
    assert lines(fig) == {
        "train (nll)": ([10, 20, 30], [2.4, 1.6, 1.1]),
        "validation": ([20, 40], [1.7, 1.2]),
        "BLEU": ([20, 40], [10.0, 30.0]),
        "exact match (%)": ([20, 40], [25.0, 50.0]),
    }
    assert matplotlib.image.imread(str(tmp_path / "curves.png")).ndim == 3


def test_training_curves_fall_back_to_the_batch_loss_and_say_when_empty():
    only_train = [{"step": s, "split": "train", "loss": v} for s, v in ((1, 3.0), (2, 2.0))]
    fig = training_curves(only_train)
    assert lines(fig) == {"train (loss)": ([1, 2], [3.0, 2.0])}
    assert [t.get_text() for t in fig.axes[1].texts] == ["no records yet"]
