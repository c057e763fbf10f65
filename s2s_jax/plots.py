"""Figures: attention heatmaps and training curves.

Figures are built with ``matplotlib.figure.Figure`` rather than pyplot: no
global figure registry to leak into during long runs, no backend switched
behind a notebook's back, and nothing needs a display. A notebook shows a
returned figure as its cell's value.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from s2s_jax.checkpoint import restore
from s2s_jax.data.dataset import TokenizedSplit, prepare_data
from s2s_jax.data.pipeline import pad_to_bucket
from s2s_jax.decoding.greedy import greedy_decode
from s2s_jax.fileio import atomic_open
from s2s_jax.parallel import Parallel
from s2s_jax.summary import read_metrics
from s2s_jax.training.step import TrainState
from s2s_jax.vocab import EOS_ID, Tokenizer

log = logging.getLogger("s2s_jax")


def _save(fig: Figure, path: str | None) -> Figure:
    if path:
        with atomic_open(path, "wb") as f:
            fig.savefig(f, format="png", dpi=100)
    return fig


def attention_heatmap(weights: np.ndarray, src_tokens: Sequence[str], tgt_tokens: Sequence[str],
                      title: str = "", path: str | None = None) -> Figure:
    """Heatmap of attention ``weights`` [tgt_len, src_len] with the tokens as tick labels.

    Rows and columns beyond the given tokens (PAD) are cut off. Saved as PNG when
    ``path`` is given.
    """
    w = np.asarray(weights, np.float32)
    if w.ndim != 2 or w.shape[0] < len(tgt_tokens) or w.shape[1] < len(src_tokens):
        raise ValueError(f"attention weights of shape {w.shape} do not cover {len(tgt_tokens)} output "
                         f"and {len(src_tokens)} source tokens.")
    w = w[:len(tgt_tokens), :len(src_tokens)]
    fig = Figure(figsize=(max(3.0, 0.35 * len(src_tokens) + 1.5), max(2.5, 0.35 * len(tgt_tokens) + 1.2)))
    ax = fig.subplots()
    image = ax.imshow(w, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(src_tokens)), labels=list(src_tokens), rotation=90)
    ax.set_yticks(range(len(tgt_tokens)), labels=list(tgt_tokens))
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return _save(fig, path)


def _series(records: Iterable[dict[str, Any]], split: str, key: str) -> tuple[list[int], list[float]]:
    points = [(r["step"], r[key]) for r in records
              if r.get("split") == split and isinstance(r.get(key), (int, float))]
    return [s for s, _ in points], [float(v) for _, v in points]


def training_curves(records: Sequence[dict[str, Any]] | str, path: str | None = None) -> Figure:
    """Loss (train and validation) and validation BLEU / exact match against the step.

    ``records`` are ``metrics.jsonl`` records or the workdir holding that file. The
    training curve is the per-token NLL averaged since the previous record (the
    quantity the validation loss measures), or the batch loss in older records.
    Saved as PNG when ``path`` is given.
    """
    if isinstance(records, str):
        records = read_metrics(records)
    fig = Figure(figsize=(10.0, 4.0))
    loss_ax, score_ax = fig.subplots(1, 2)
    train_key = "nll" if any(r.get("split") == "train" and "nll" in r for r in records) else "loss"
    for split, key, label in (("train", train_key, f"train ({train_key})"), ("validation", "loss", "validation")):
        steps, values = _series(records, split, key)
        if steps:
            loss_ax.plot(steps, values, marker="." if split == "validation" else None, label=label)
    loss_ax.set(xlabel="step", ylabel="loss (nats per token)", title="loss")
    for key, scale, label in (("bleu", 1.0, "BLEU"), ("exact_match", 100.0, "exact match (%)")):
        steps, values = _series(records, "validation", key)
        if steps:
            score_ax.plot(steps, [v * scale for v in values], marker=".", label=label)
    score_ax.set(xlabel="step", ylabel="score", title="validation")
    for ax in (loss_ax, score_ax):
        if ax.lines:
            ax.legend()
            ax.grid(alpha=0.3)
        else:
            ax.text(0.5, 0.5, "no records yet", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return _save(fig, path)


@dataclasses.dataclass(frozen=True)
class AttentionExample:
    """One sentence decoded greedily, with what a heatmap of it needs."""

    source: str
    reference: str
    output: str
    weights: np.ndarray  # [output tokens incl. EOS, source tokens]
    src_pieces: list[str]
    out_pieces: list[str]

    def heatmap(self, path: str | None = None) -> Figure:
        return attention_heatmap(self.weights, self.src_pieces, self.out_pieces, title=self.source, path=path)


def attention_examples(state: TrainState, split: TokenizedSplit, src_tokenizer: Tokenizer, tgt_tokenizer: Tokenizer,
                       rows: Iterable[int] = range(4), parallel: Parallel | None = None) -> list[AttentionExample]:
    """Greedy outputs and attention weights of the pairs ``rows`` of ``split``.

    The sources are padded to a bucket length of the run's config, so repeated calls
    with the same rows reuse one compiled program. The model must have attention.
    ``parallel`` (the one that replicated ``state``) places the sources beside the
    parameters; on several hosts every process must call this with the same rows.
    """
    cfg = state.config
    if cfg.model.attention == "none":
        raise ValueError("this model has no attention (model.attention='none') to plot.")
    rows = [i for i in rows if i < len(split)]
    if not rows:
        return []
    src = pad_to_bucket([split.src[i] for i in rows], cfg.data.bucket_lengths)
    if parallel is not None:
        src = parallel.replicate(src)
    tokens, attention = greedy_decode(state.model, state.params, src, cfg.decode.max_len_b,
                                      max_len_a=cfg.decode.max_len_a, min_len=cfg.decode.min_len,
                                      return_attention=True)
    gather = np.asarray if parallel is None else parallel.gather
    tokens, attention = gather(tokens), gather(attention)
    out = []
    for r, i in enumerate(rows):
        ends = np.flatnonzero(tokens[r] == EOS_ID)
        n_out = int(ends[0]) + 1 if ends.size else tokens.shape[1]
        n_src = len(split.src[i])
        out.append(AttentionExample(
            source=split.raw_src[i], reference=split.raw_tgt[i], output=tgt_tokenizer.decode(tokens[r]),
            weights=attention[r, :n_out, :n_src], src_pieces=src_tokenizer.pieces(split.src[i]),
            out_pieces=tgt_tokenizer.pieces(tokens[r, :n_out])))
    return out


def plot_run(workdir: str, out: str | None = None, split: str = "validation", examples: int = 4,
             checkpoint: str | int = "best") -> list[str]:
    """Write ``curves.png`` (from ``metrics.jsonl``) and ``attention_<split>_<i>.png`` for
    the first ``examples`` pairs of ``split``, decoded with ``checkpoint`` of the run in
    ``workdir``, into ``out`` (default ``workdir/plots``). Returns the paths written."""
    out = out or os.path.join(workdir, "plots")
    _, state, src_tok, tgt_tok = restore(workdir, checkpoint)
    paths = [os.path.join(out, "curves.png")]
    training_curves(workdir, path=paths[0])
    if state.config.model.attention == "none":
        log.warning("%s: the model has no attention; only the training curves were plotted.", workdir)
        return paths
    data = prepare_data(state.config, workdir, splits=(split,))
    for i, ex in enumerate(attention_examples(state, data.splits[split], src_tok, tgt_tok, range(examples))):
        paths.append(os.path.join(out, f"attention_{split}_{i}.png"))
        ex.heatmap(path=paths[-1])
    return paths
