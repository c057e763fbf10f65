"""Special token ids and the tokenizers: character, word and SentencePiece.

Every tokenizer maps text to ids >= 4 (ids 0-3 are PAD, BOS, EOS, UNK),
is trained on the training split only, saves to and loads from a workdir,
and decodes ids back to text, so BLEU is computed on detokenised output.
``decode(encode(t)) == normalize(t)`` for every tokenizer. A saved tokenizer records
the ``DataConfig`` settings it was trained with; loading refuses a file that does
not match the config, naming the file and the field.
"""

from __future__ import annotations

import abc
import base64
import collections
import dataclasses
import json
import os
from collections.abc import Iterable, Sequence

from s2s_jax.config import DataConfig
from s2s_jax.errors import DataError, TokenizerError
from s2s_jax.fileio import atomic_write_text, read_text

PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")


class Tokenizer(abc.ABC):
    kind: str

    @property
    @abc.abstractmethod
    def vocab_size(self) -> int: ...

    @abc.abstractmethod
    def encode(self, text: str) -> list[int]:
        """Text -> ids, without BOS/EOS."""

    @abc.abstractmethod
    def pieces(self, ids: Sequence[int]) -> list[str]:
        """Ids -> display strings, one per id (tick labels of attention plots)."""

    @abc.abstractmethod
    def _detokenize(self, ids: list[int]) -> str: ...

    @abc.abstractmethod
    def normalize(self, text: str) -> str:
        """What ``decode(encode(text))`` gives back."""

    @abc.abstractmethod
    def to_json(self) -> dict: ...

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text; stops at the first EOS, drops PAD and BOS."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS_ID:
                break
            if i not in (PAD_ID, BOS_ID):
                out.append(i)
        return self._detokenize(out)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]


class VocabTokenizer(Tokenizer):
    """A tokenizer with an explicit list of symbols (characters or words)."""

    def __init__(self, symbols: Sequence[str]):
        self.itos = list(SPECIALS) + list(symbols)
        self.stoi = {s: i for i, s in enumerate(self.itos)}

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def _ids(self, symbols: Iterable[str]) -> list[int]:
        return [self.stoi.get(s, UNK_ID) for s in symbols]

    def pieces(self, ids: Sequence[int]) -> list[str]:
        return [self.itos[int(i)] if 0 <= int(i) < len(self.itos) else SPECIALS[UNK_ID] for i in ids]

    @staticmethod
    def _count(units: Iterable[Iterable[str]], min_freq: int, max_size: int) -> list[str]:
        counts = collections.Counter(s for u in units for s in u)
        # Most frequent first; ties by symbol so the vocabulary is deterministic.
        ranked = sorted((s for s, c in counts.items() if c >= min_freq), key=lambda s: (-counts[s], s))
        return ranked[:max_size] if max_size > 0 else ranked


class CharTokenizer(VocabTokenizer):
    kind = "char"

    def encode(self, text: str) -> list[int]:
        return self._ids(text)

    def _detokenize(self, ids: list[int]) -> str:
        return "".join(self.itos[i] if i < len(self.itos) else SPECIALS[UNK_ID] for i in ids)

    def pieces(self, ids: Sequence[int]) -> list[str]:
        return [p.replace(" ", "\u2581") for p in super().pieces(ids)]  # a visible space for plots

    def normalize(self, text: str) -> str:
        return "".join(c if c in self.stoi else SPECIALS[UNK_ID] for c in text)

    def to_json(self) -> dict:
        return {"kind": self.kind, "symbols": self.itos[len(SPECIALS):]}

    @classmethod
    def train(cls, texts: Iterable[str], min_freq: int = 1) -> CharTokenizer:
        return cls(cls._count(texts, min_freq, 0))


class WordTokenizer(VocabTokenizer):
    kind = "word"

    def __init__(self, symbols: Sequence[str], lowercase: bool = False):
        super().__init__(symbols)
        self.lowercase = lowercase

    def _split(self, text: str) -> list[str]:
        return (text.lower() if self.lowercase else text).split()

    def encode(self, text: str) -> list[int]:
        return self._ids(self._split(text))

    def _detokenize(self, ids: list[int]) -> str:
        return " ".join(VocabTokenizer.pieces(self, ids))

    def normalize(self, text: str) -> str:
        return " ".join(w if w in self.stoi else SPECIALS[UNK_ID] for w in self._split(text))

    def to_json(self) -> dict:
        return {"kind": self.kind, "symbols": self.itos[len(SPECIALS):], "lowercase": self.lowercase}

    @classmethod
    def train(cls, texts: Iterable[str], lowercase: bool = False, min_freq: int = 1,
              max_size: int = 0) -> WordTokenizer:
        split = cls([], lowercase)._split
        return cls(cls._count((split(t) for t in texts), min_freq, max_size), lowercase)


class SentencePieceTokenizer(Tokenizer):
    """SentencePiece (Kudo & Richardson 2018), unigram or BPE, with byte fallback
    so that no character is ever unknown and decoding restores the text."""

    kind = "sentencepiece"

    def __init__(self, model_proto: bytes):
        import sentencepiece as spm

        self.model_proto = model_proto
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
        self._normalizer = spm.SentencePieceNormalizer(model_proto=model_proto)

    @property
    def vocab_size(self) -> int:
        return self.sp.vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self.sp.encode(list(texts))

    def pieces(self, ids: Sequence[int]) -> list[str]:
        return [self.sp.id_to_piece(int(i)) for i in ids]

    def _detokenize(self, ids: list[int]) -> str:
        return self.sp.decode(ids)

    def normalize(self, text: str) -> str:
        return self._normalizer.normalize(text).replace("\u2581", " ").strip()

    def to_json(self) -> dict:
        return {"kind": self.kind, "model": base64.b64encode(self.model_proto).decode("ascii")}

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, model_type: str = "unigram") -> SentencePieceTokenizer:
        import io

        import sentencepiece as spm

        proto = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(t for t in texts if t),
            model_writer=proto,
            vocab_size=vocab_size,
            model_type=model_type,
            pad_id=PAD_ID, bos_id=BOS_ID, eos_id=EOS_ID, unk_id=UNK_ID,
            byte_fallback=True,
            character_coverage=1.0,
            num_threads=1,  # deterministic pieces for a given corpus
            minloglevel=2,
        )
        return cls(proto.getvalue())


def train_tokenizer(cfg: DataConfig, texts: Sequence[str]) -> Tokenizer:
    """A tokenizer of ``cfg.tokenizer`` kind trained on ``texts``."""
    if cfg.tokenizer == "char":
        return CharTokenizer.train(texts, cfg.min_freq)
    if cfg.tokenizer == "word":
        return WordTokenizer.train(texts, cfg.lowercase, cfg.min_freq, cfg.max_vocab_size)
    try:
        return SentencePieceTokenizer.train(texts, cfg.vocab_size, cfg.sentencepiece_model)
    except RuntimeError as e:  # e.g. vocab_size larger than the corpus allows
        raise TokenizerError(f"SentencePiece training failed: {str(e).splitlines()[-1]} "
                             "(lower data.vocab_size?)") from None


def tokenizer_from_json(d: dict) -> Tokenizer:
    kind = d.get("kind")
    if kind == "char":
        return CharTokenizer(d["symbols"])
    if kind == "word":
        return WordTokenizer(d["symbols"], d.get("lowercase", False))
    if kind == "sentencepiece":
        return SentencePieceTokenizer(base64.b64decode(d["model"]))
    raise TokenizerError(f"unknown tokenizer kind {kind!r}")


def tokenizer_path(workdir: str, side: str) -> str:
    return os.path.join(workdir, "tokenizers", f"{side}.json")


def tokenizer_settings(cfg: DataConfig) -> dict:
    """The ``DataConfig`` fields a tokenizer of ``cfg.tokenizer`` kind is trained with: those
    whose ``tokenizer`` metadata names that kind."""
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if cfg.tokenizer in f.metadata["tokenizer"]}


def save_tokenizers(workdir: str, src: Tokenizer, tgt: Tokenizer, cfg: DataConfig | None = None) -> None:
    """Write both tokenizers (atomically), with the settings of ``cfg`` they were trained with."""
    settings = {"data": tokenizer_settings(cfg)} if cfg is not None else {}
    for side, tok in (("src", src), ("tgt", tgt)):
        atomic_write_text(tokenizer_path(workdir, side), json.dumps(tok.to_json() | settings))


def load_tokenizers(workdir: str, cfg: DataConfig) -> tuple[Tokenizer, Tokenizer]:
    """The tokenizers saved in ``workdir``, checked against ``cfg``."""
    out = []
    for side in ("src", "tgt"):
        path = tokenizer_path(workdir, side)
        try:
            saved = json.loads(read_text(path))
            tok = tokenizer_from_json(saved)
        except FileNotFoundError:
            raise TokenizerError(f"{path}: no tokenizer file (was training started in this workdir?)") from None
        except DataError as e:
            raise TokenizerError(str(e)) from None
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise TokenizerError(f"{path}: not a valid tokenizer file ({e}).") from None
        if tok.kind != cfg.tokenizer:
            raise TokenizerError(f"{path}: holds a {tok.kind} tokenizer but data.tokenizer is {cfg.tokenizer!r}.")
        if tok.kind == "sentencepiece" and tok.vocab_size != cfg.vocab_size:
            raise TokenizerError(f"{path}: has {tok.vocab_size} pieces but data.vocab_size is {cfg.vocab_size}.")
        if tok.kind == "word" and tok.lowercase != cfg.lowercase:
            raise TokenizerError(f"{path}: lowercase={tok.lowercase} but data.lowercase is {cfg.lowercase}.")
        for name, value in tokenizer_settings(cfg).items():
            trained_with = saved.get("data", {}).get(name, value)
            if trained_with != value:
                raise TokenizerError(f"{path}: was trained with data.{name}={trained_with!r} "
                                     f"but data.{name} is {value!r}.")
        out.append(tok)
    return out[0], out[1]
