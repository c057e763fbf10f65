"""Translate text with a trained run: ``Translator.from_workdir(workdir).translate(sentences)``.

Sentences are tokenized, sorted by length and cut into batches whose source
width is one of the run's bucket lengths (``data.bucket_lengths``) and whose
row count is a power of two up to ``batch_size``, so a stream of requests
compiles a handful of programs, not one per sentence. Results come back in
input order. A sentence that encodes to no tokens (the empty string) gets an
empty translation without running the model; a sentence longer than the
longest bucket is truncated to it, with a warning.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from s2s_jax.checkpoint import restore
from s2s_jax.config import Config, DecodeConfig, fields_where
from s2s_jax.data.dataset import source_ids, truncate_source
from s2s_jax.data.pipeline import bucket_index, pad_rows
from s2s_jax.decoding import decode_hypotheses
from s2s_jax.errors import ConfigError
from s2s_jax.models.seq2seq import Seq2Seq, decoding_params
from s2s_jax.training.step import TrainState
from s2s_jax.vocab import Tokenizer

log = logging.getLogger(__name__)

# Fields of DecodeConfig a call may override (marked translate=True); the strategy follows from beam_size.
DECODE_OPTIONS = tuple(f.removeprefix("decode.") for f in fields_where("translate"))


class Hypothesis(NamedTuple):
    """One scored translation: the beam-search score (summed token log-probabilities, EOS
    included, over the GNMT length penalty; see :mod:`s2s_jax.decoding.beam_search`) and the text."""

    score: float
    text: str


@dataclasses.dataclass(frozen=True)
class _Batch:
    indices: list[int]  # into the inputs, one per filled row
    src: np.ndarray  # [rows, bucket_len], rows a power of two (or batch_size); unfilled rows are PAD


def _batches(ids: Sequence[Sequence[int]], buckets: tuple[int, ...], batch_size: int) -> list[_Batch]:
    """Non-empty ``ids`` sorted by length into batches padded to a bucket length."""
    order = sorted((i for i, x in enumerate(ids) if len(x)), key=lambda i: len(ids[i]))
    widths = np.asarray(buckets)[bucket_index(np.array([len(ids[i]) for i in order], np.int64), buckets)]
    out = []
    start = 0
    while start < len(order):
        width = widths[start]
        end = start
        while end < len(order) and end - start < batch_size and widths[end] == width:
            end += 1
        chunk = order[start:end]
        rows = min(batch_size, 1 << (len(chunk) - 1).bit_length())
        out.append(_Batch(chunk, pad_rows([ids[i] for i in chunk], int(width), rows)))
        start = end
    return out


class Translator:
    """A trained model with its tokenizers and decode settings, ready to translate text.

    ``translate(sentences)`` returns one string per sentence; with ``n_best`` > 1, a list of
    ``n_best`` :class:`Hypothesis` ``(score, text)`` per sentence, best first. ``hypotheses``
    always returns the scored lists.
    """

    def __init__(self, model: Seq2Seq, params: Any, src_tokenizer: Tokenizer, tgt_tokenizer: Tokenizer,
                 config: Config, step: int | None = None):
        self.model, self.params, self.config, self.step = model, params, config, step
        self._decode_params = decoding_params(model, params)
        self.src_tokenizer, self.tgt_tokenizer = src_tokenizer, tgt_tokenizer

    @classmethod
    def from_workdir(cls, workdir: str, checkpoint: str | int = "best") -> Translator:
        """The run in ``workdir`` at ``checkpoint``: "best" (the best validation checkpoint, or the
        latest while there is none), "latest", or a step number. Reads only the workdir."""
        _, state, src_tok, tgt_tok = restore(workdir, checkpoint)
        return cls.from_state(state, src_tok, tgt_tok)

    @classmethod
    def from_state(cls, state: TrainState, src_tokenizer: Tokenizer, tgt_tokenizer: Tokenizer) -> Translator:
        """A train state in memory (in a notebook, after ``train_step``s) with its tokenizers."""
        return cls(state.model, state.params, src_tokenizer, tgt_tokenizer, state.config, int(state.step))

    def decode_config(self, beam_size: int | None = None, n_best: int = 1, **options: Any) -> DecodeConfig:
        """The run's ``decode`` settings with these changes: ``beam_size`` 1 decodes greedily,
        more by beam search, None as the run does (:meth:`DecodeConfig.with_beam_size`);
        ``options`` are any of :data:`DECODE_OPTIONS`."""
        unknown = sorted(set(options) - set(DECODE_OPTIONS))
        if unknown:
            raise ConfigError(f"unknown decode option {unknown[0]!r}; choose from {', '.join(DECODE_OPTIONS)}.")
        return dataclasses.replace(self.config.decode.with_beam_size(beam_size, n_best), **options)

    def translate(self, sentences: Sequence[str], *, beam_size: int | None = None, n_best: int = 1,
                  batch_size: int | None = None, progress: Callable[[int], None] | None = None,
                  **options: Any) -> list[str] | list[list[Hypothesis]]:
        """Translations of ``sentences``, in their order: a string each, or with ``n_best`` > 1
        a best-first list of ``n_best`` :class:`Hypothesis`. Greedy with ``beam_size`` 1, beam
        search with more, the run's decoding with None; ``options`` override the run's decode
        settings (:data:`DECODE_OPTIONS`). ``batch_size`` (default ``data.eval_batch_size``) bounds
        the sentences decoded together; ``progress(n)`` is called as each batch of n sentences is done."""
        cfg = self.decode_config(beam_size, n_best, **options)
        hyps = self._run(sentences, cfg, batch_size=batch_size, progress=progress)
        return hyps if n_best > 1 else [h[0].text for h in hyps]

    def hypotheses(self, sentences: Sequence[str], *, beam_size: int | None = None, n_best: int = 1,
                   batch_size: int | None = None, progress: Callable[[int], None] | None = None,
                   **options: Any) -> list[list[Hypothesis]]:
        """Like :meth:`translate`, but always the scored lists (greedy decoding runs as a beam of
        one, which gives the same output with its score)."""
        cfg = self.decode_config(beam_size, n_best, **options)
        if cfg.strategy == "greedy":
            cfg = dataclasses.replace(cfg, strategy="beam", beam_size=1)
        return self._run(sentences, cfg, batch_size=batch_size, progress=progress)

    def encode(self, sentences: Sequence[str]) -> list[list[int]]:
        """Source ids of ``sentences``, truncated to the longest bucket (with one warning)."""
        limit = self.config.data.max_len
        ids = source_ids(self.src_tokenizer, list(sentences), self.config.data)
        long = [i for i, x in enumerate(ids) if len(x) > limit]
        if long:
            log.warning("%d of %d inputs are longer than the model's limit of %d tokens (data.bucket_lengths[-1]) "
                        "and were truncated; the first is input %d.", len(long), len(ids), limit, long[0] + 1)
        return [truncate_source(x, limit, self.config.data) for x in ids]

    def _run(self, sentences: Sequence[str], cfg: DecodeConfig, batch_size: int | None,
             progress: Callable[[int], None] | None) -> list[list[Hypothesis]]:
        if isinstance(sentences, str):
            raise TypeError("translate() takes a list of sentences, not one string.")
        batch_size = batch_size or self.config.data.eval_batch_size
        if batch_size < 1:
            raise ConfigError(f"batch_size must be positive; got {batch_size}.")
        ids = self.encode(sentences)
        out = [[Hypothesis(0.0, "")] * cfg.n_best for _ in ids]
        for batch in _batches(ids, self.config.data.bucket_lengths, batch_size):
            tokens, scores = (np.asarray(x) for x in decode_hypotheses(self.model, self._decode_params, batch.src, cfg))
            for row, i in enumerate(batch.indices):
                out[i] = [Hypothesis(float(scores[row, k]), self.tgt_tokenizer.decode(tokens[row, k]))
                          for k in range(cfg.n_best)]
            if progress is not None:
                progress(len(batch.indices))
        return out
