"""Corpus metrics (sacrebleu BLEU and chrF with their signatures, exact match)
and the evaluation of a split: teacher-forced loss plus decoded translations."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import sacrebleu

from s2s_jax.config import DecodeConfig
from s2s_jax.data.dataset import TokenizedSplit
from s2s_jax.data.pipeline import eval_batches
from s2s_jax.decoding import decode
from s2s_jax.training.step import TrainState, eval_step
from s2s_jax.vocab import Tokenizer


def corpus_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float | str]:
    """sacreBLEU corpus BLEU (13a tokenisation, cased) and chrF, with signatures, and exact match."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references.")
    bleu = sacrebleu.metrics.BLEU()
    chrf = sacrebleu.metrics.CHRF()
    refs = [list(references)]
    b = bleu.corpus_score(list(hypotheses), refs)
    c = chrf.corpus_score(list(hypotheses), refs)
    exact = float(np.mean([h == r for h, r in zip(hypotheses, references, strict=True)])) if references else 0.0
    return {"bleu": b.score, "chrf": c.score, "exact_match": exact,
            "bleu_signature": str(bleu.get_signature()), "chrf_signature": str(chrf.get_signature())}


def translate_batches(state: TrainState, batches: list[dict[str, np.ndarray]], n: int, decode_cfg: DecodeConfig,
                      tokenizer: Tokenizer, progress: Callable[[int], None] | None = None) -> list[str]:
    """Decode ``batches`` (rows carry ``index`` into a split of ``n`` pairs) and
    detokenise; the result is in the split's order."""
    out = [""] * n
    for batch in batches:
        tokens = np.asarray(decode(state.model, state.params, batch["src"], decode_cfg))
        for row, i in enumerate(batch["index"]):
            if i >= 0:
                out[i] = tokenizer.decode(tokens[row])
        if progress is not None:
            progress(int(np.sum(batch["index"] >= 0)))
    return out


def evaluate(state: TrainState, split: TokenizedSplit, tokenizer: Tokenizer, decode_cfg: DecodeConfig,
             limit: int = 0, progress: Callable[[int], None] | None = None) -> tuple[dict, list[str]]:
    """Loss, perplexity and token accuracy (teacher-forced), and BLEU, chrF and exact
    match of decoded translations, on the first ``limit`` pairs (0: all) of ``split``.
    Returns the metrics and the hypotheses."""
    batches = eval_batches(split, state.config.data, limit=limit)
    n = sum(int(np.sum(b["index"] >= 0)) for b in batches)
    sums = {"nll_sum": 0.0, "tokens": 0.0, "correct": 0.0}
    for batch in batches:
        stats = eval_step(state, {"src": batch["src"], "tgt": batch["tgt"]})
        for k in sums:
            sums[k] += float(stats[k])
    loss = sums["nll_sum"] / max(sums["tokens"], 1.0)
    hyps = translate_batches(state, batches, n, decode_cfg, tokenizer, progress)
    metrics = {"loss": loss, "perplexity": math.exp(min(loss, 50.0)),
               "token_accuracy": sums["correct"] / max(sums["tokens"], 1.0), "examples": n}
    metrics |= corpus_scores(hyps, split.raw_tgt[:n])
    return metrics, hyps
