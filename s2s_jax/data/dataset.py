"""From a ``DataConfig`` to tokenized splits: load pairs, train or load the
tokenizers, filter over-long pairs, resolve the model's vocabulary sizes."""

from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np

from s2s_jax.config import Config, DataConfig
from s2s_jax.data.sources import ROLES, load_splits
from s2s_jax.errors import ConfigError
from s2s_jax.vocab import EOS_ID, Tokenizer, load_tokenizers, save_tokenizers, tokenizer_path, train_tokenizer

log = logging.getLogger(__name__)

SPLITS = ROLES


@dataclasses.dataclass
class TokenizedSplit:
    """One split: ids (targets without BOS/EOS, sources with EOS if ``data.source_eos``),
    and the raw text (references for BLEU)."""

    name: str
    src: list[np.ndarray]
    tgt: list[np.ndarray]
    raw_src: list[str]
    raw_tgt: list[str]
    dropped: int = 0  # over-long pairs left out
    truncated: int = 0  # over-long pairs cut to fit

    def __len__(self) -> int:
        return len(self.src)

    def __repr__(self) -> str:
        # Short: grain names a map transform by its repr, and the default one printed every array
        # of the split, several seconds at the start of each epoch (BENCHMARKS.md).
        return f"TokenizedSplit({self.name!r}, {len(self)} pairs, dropped={self.dropped}, truncated={self.truncated})"

    @property
    def src_lengths(self) -> np.ndarray:
        return np.array([len(x) for x in self.src], np.int32)

    @property
    def tgt_lengths(self) -> np.ndarray:
        return np.array([len(x) for x in self.tgt], np.int32)


@dataclasses.dataclass
class Data:
    config: Config  # with the model's vocabulary sizes resolved
    src_tokenizer: Tokenizer
    tgt_tokenizer: Tokenizer
    splits: dict[str, TokenizedSplit]


def source_ids(tokenizer: Tokenizer, texts: list[str], cfg: DataConfig) -> list[list[int]]:
    """Source ids of ``texts``, with EOS appended when ``cfg.source_eos`` (not to empty texts,
    which stay empty: nothing to translate)."""
    ids = tokenizer.encode_batch(texts)
    return [[*x, EOS_ID] if cfg.source_eos and len(x) else list(x) for x in ids]


def truncate_source(ids: list[int], limit: int, cfg: DataConfig) -> list[int]:
    """The first ``limit`` source ids, keeping the final EOS of ``cfg.source_eos``."""
    if len(ids) <= limit:
        return ids
    return [*ids[:limit - 1], EOS_ID] if cfg.source_eos else ids[:limit]


def tokenize_split(name: str, pairs: list[tuple[str, str]], src_tok: Tokenizer, tgt_tok: Tokenizer,
                   cfg: DataConfig, training: bool) -> TokenizedSplit:
    """Encode ``pairs``; pairs longer than the longest bucket are dropped (training with
    ``overlong="drop"``) or truncated. A source may fill the longest bucket (EOS included),
    a target one token less (its row also holds BOS and EOS)."""
    max_src, max_tgt = cfg.max_len, cfg.max_len - 1
    srcs = source_ids(src_tok, [s for s, _ in pairs], cfg)
    tgts = tgt_tok.encode_batch([t for _, t in pairs])
    out = TokenizedSplit(name, [], [], [], [])
    for (s_text, t_text), s, t in zip(pairs, srcs, tgts, strict=True):
        if len(s) > max_src or len(t) > max_tgt:
            if training and cfg.overlong == "drop":
                out.dropped += 1
                continue
            out.truncated += 1
            s, t = truncate_source(s, max_src, cfg), t[:max_tgt]
        out.src.append(np.asarray(s, np.int32))
        out.tgt.append(np.asarray(t, np.int32))
        out.raw_src.append(s_text)
        out.raw_tgt.append(t_text)
    return out


def _tokenizers(cfg: DataConfig, workdir: str | None, train_pairs: list[tuple[str, str]]):
    if workdir and os.path.exists(tokenizer_path(workdir, "src")):
        return load_tokenizers(workdir, cfg)
    srcs = [s for s, _ in train_pairs]
    tgts = [t for _, t in train_pairs]
    if cfg.joint_vocab:
        src_tok = tgt_tok = train_tokenizer(cfg, srcs + tgts)
    else:
        src_tok, tgt_tok = train_tokenizer(cfg, srcs), train_tokenizer(cfg, tgts)
    if workdir:
        save_tokenizers(workdir, src_tok, tgt_tok, cfg)
    return src_tok, tgt_tok


def resolve_vocab_sizes(cfg: Config, src_tok: Tokenizer, tgt_tok: Tokenizer) -> Config:
    """Fill vocabulary sizes left at 0 from the tokenizers; refuse sizes that disagree."""
    sizes = {}
    for name, tok in (("src_vocab_size", src_tok), ("tgt_vocab_size", tgt_tok)):
        given = getattr(cfg.model, name)
        if given not in (0, tok.vocab_size):
            raise ConfigError(f"model.{name} is {given} but the tokenizer has {tok.vocab_size} tokens; "
                              "set it to 0 to take the tokenizer's size.")
        sizes[name] = tok.vocab_size
    return cfg.replace(model=sizes)


def prepare_data(cfg: Config, workdir: str | None = None, splits: tuple[str, ...] = SPLITS) -> Data:
    """Load the pairs of ``splits``, train (or load from ``workdir``) the tokenizers on the
    training split, and tokenize. Tokenizers trained here are saved in ``workdir``."""
    trained = bool(workdir) and os.path.exists(tokenizer_path(workdir, "src"))
    pairs = load_splits(cfg.data, splits if trained or "train" in splits else ("train", *splits))
    src_tok, tgt_tok = _tokenizers(cfg.data, workdir, pairs.get("train", []))
    cfg = resolve_vocab_sizes(cfg, src_tok, tgt_tok)
    out = {}
    for name in splits:
        out[name] = tokenize_split(name, pairs[name], src_tok, tgt_tok, cfg.data, training=name == "train")
        if out[name].dropped or out[name].truncated:
            log.warning("%s split: %d over-long pairs dropped, %d truncated (longest bucket %d).",
                        name, out[name].dropped, out[name].truncated, cfg.data.max_len)
    if "train" in out and len(out["train"]) == 0:
        raise ConfigError(f"no training pairs left after filtering: {out['train'].dropped} were longer than "
                          f"data.bucket_lengths[-1]={cfg.data.max_len}.")
    return Data(cfg, src_tok, tgt_tok, out)
