"""Corpus metrics (sacrebleu BLEU and chrF with their signatures, exact match),
the evaluation of a split (teacher-forced loss plus decoded translations), and
the evaluation of a trained run's checkpoint (``s2s-eval``)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sacrebleu

from s2s_jax.checkpoint import restore, saved_config
from s2s_jax.config import DataConfig, DecodeConfig
from s2s_jax.data.dataset import TokenizedSplit, prepare_data
from s2s_jax.data.pipeline import eval_batches
from s2s_jax.data.sources import ROLES, split_names
from s2s_jax.decoding import decode
from s2s_jax.errors import ConfigError
from s2s_jax.fileio import atomic_open, atomic_write_text, workdir_lock
from s2s_jax.models.seq2seq import decoding_params
from s2s_jax.parallel import Parallel
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
                      tokenizer: Tokenizer, progress: Callable[[int], None] | None = None,
                      parallel: Parallel | None = None) -> list[str]:
    """Decode ``batches`` (rows carry ``index`` into a split of ``n`` pairs) and
    detokenise; the result is in the split's order. ``parallel`` splits the rows over its devices."""
    out = [""] * n
    params = decoding_params(state.model, state.params)
    for batch in batches:
        if parallel is None:
            tokens = np.asarray(decode(state.model, params, batch["src"], decode_cfg))
        else:
            tokens = parallel.decode(state.model, params, batch["src"], decode_cfg)
        for row, i in enumerate(batch["index"]):
            if i >= 0:
                out[i] = tokenizer.decode(tokens[row])
        if progress is not None:
            progress(int(np.sum(batch["index"] >= 0)))
    return out


def evaluate(state: TrainState, split: TokenizedSplit, tokenizer: Tokenizer, decode_cfg: DecodeConfig,
             limit: int = 0, progress: Callable[[int], None] | None = None,
             parallel: Parallel | None = None) -> tuple[dict, list[str]]:
    """Loss, perplexity and token accuracy (teacher-forced), and BLEU, chrF and exact
    match of decoded translations, on the first ``limit`` pairs (0: all) of ``split``.
    Returns the metrics and the hypotheses. ``parallel`` (a state it replicated) splits
    each batch over its devices; every process then evaluates the whole split."""
    multiple = 1 if parallel is None else parallel.multiple
    batches = eval_batches(split, state.config.data, limit=limit, multiple=multiple)
    n = sum(int(np.sum(b["index"] >= 0)) for b in batches)
    sums = {"nll_sum": 0.0, "tokens": 0.0, "correct": 0.0}
    for batch in batches:
        arrays = {"src": batch["src"], "tgt": batch["tgt"]}
        stats = eval_step(state, arrays) if parallel is None else parallel.eval_step(state, parallel.place(arrays))
        for k in sums:
            sums[k] += float(stats[k])
    loss = sums["nll_sum"] / max(sums["tokens"], 1.0)
    hyps = translate_batches(state, batches, n, decode_cfg, tokenizer, progress, parallel)
    metrics = {"loss": loss, "perplexity": math.exp(min(loss, 50.0)),
               "token_accuracy": sums["correct"] / max(sums["tokens"], 1.0), "examples": n}
    metrics |= corpus_scores(hyps, split.raw_tgt[:n])
    return metrics, hyps


def split_role(cfg: DataConfig, split: str) -> str:
    """"train", "validation" or "test", given a role or one of the names in ``cfg.splits``."""
    if split in ROLES:
        return split
    for role, name in split_names(cfg).items():
        if name == split:
            return role
    raise ConfigError(f"split {split!r} is none of {', '.join(ROLES)} nor of the run's data.splits "
                      f"({', '.join(cfg.splits)}).")


def evaluate_workdir(workdir: str, split: str = "test", checkpoint: str | int = "best", beam_size: int | None = None,
                     output: str | None = None, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Decode ``split`` with checkpoint ``checkpoint`` of the run in ``workdir``; write the
    hypotheses (one line per input, in input order) to ``output`` (default
    ``WORKDIR/eval/SPLIT-stepN-DECODING.txt``) and the scores beside it (``.scores.json``).
    Returns the scores: BLEU, chrF and their signatures, exact match, teacher-forced
    loss, the number of examples, the checkpoint step and the decode settings."""
    saved = saved_config(workdir)
    role = split_role(saved.data, split) if saved is not None else split  # a bad split fails before restoring
    # The default output goes into the workdir, which then needs its writer lock.
    with workdir_lock(workdir) if output is None and saved is not None else contextlib.nullcontext():
        cfg, state, _, tgt_tok = restore(workdir, checkpoint)
        data = prepare_data(cfg, workdir, splits=(role,))
        decode_cfg = cfg.decode.with_beam_size(beam_size)
        step = int(state.step)
        name = split_names(cfg.data, (role,))[role]
        decoding = f"beam{decode_cfg.beam_size}" if decode_cfg.strategy == "beam" else decode_cfg.strategy
        if output is None:
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
            output = os.path.join(workdir, "eval", f"{safe}-step{step}-{decoding}.txt")
        scores_path = os.path.splitext(output)[0] + ".scores.json"
        metrics, hyps = evaluate(state, data.splits[role], tgt_tok, decode_cfg, progress=progress)
        report = {**metrics, "split": role, "split_name": name, "checkpoint": checkpoint, "step": step,
                  "decode": dataclasses.asdict(decode_cfg), "workdir": workdir, "hypotheses": output,
                  "scores": scores_path}
        with atomic_open(output) as f:
            f.writelines(h + "\n" for h in hyps)
        atomic_write_text(scores_path, json.dumps(report, indent=2) + "\n")
    return report
