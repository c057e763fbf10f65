"""Frozen configuration dataclasses: ``Config{model, data, train, decode}``.

Every field has a default that runs. A value outside a field's allowed set
raises :class:`ConfigError` with one sentence naming the field, both when a
config is built in Python and when it is read from JSON or the command line.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, Literal

from s2s_jax.errors import ConfigError


def _check_choices(obj: Any, section: str) -> None:
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        hint = hints[f.name]
        value = getattr(obj, f.name)
        if typing.get_origin(hint) is Literal and value not in typing.get_args(hint):
            allowed = ", ".join(repr(a) for a in typing.get_args(hint))
            raise ConfigError(f"{section}.{f.name} must be one of {allowed}; got {value!r}.")


def _require(cond: bool, field: str, message: str) -> None:
    if not cond:
        raise ConfigError(f"{field} {message}.")


CellKind = Literal["lstm", "gru", "rnn"]
AttentionKind = Literal["none", "dot", "general", "additive"]


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Encoder-decoder architecture.

    ``attention_style`` picks where attention sits in the decoder step:
    ``luong`` (Luong et al. 2015): the cell runs first, its new state is the
    query, the output is the attentional state ``tanh(W_c[c; h])``, optionally
    fed to the next step (``input_feeding``); ``bahdanau`` (Bahdanau et al.
    2015): the previous state is the query, the context joins the cell input,
    and the generator reads ``[h; c; emb]``.
    """

    src_vocab_size: int = 0  # 0: taken from the trained tokenizer
    tgt_vocab_size: int = 0
    embed_dim: int = 64
    hidden_size: int = 128  # per direction in the encoder; the decoder's size
    num_layers: int = 1
    cell: CellKind = "lstm"
    bidirectional: bool = False
    bridge: Literal["copy", "zero", "linear"] = "copy"
    context_every_step: bool = False
    attention: AttentionKind = "none"
    attention_style: Literal["luong", "bahdanau"] = "luong"
    input_feeding: bool = False
    reverse_source: bool = False
    dropout: float = 0.0
    tie_embeddings: bool = False
    maxout_units: int = 0  # >0: the generator's deep maxout layer (Bahdanau et al. 2015 use 500)
    dtype: Literal["float32", "bfloat16", "auto"] = "float32"  # matmuls; "auto": s2s_jax/precision.py
    init_scale: float = 0.0  # >0: every parameter ~ uniform(-s, s) (Sutskever et al. 2014)
    forget_bias: float = 0.0  # added to the LSTM forget gate's bias (Jozefowicz et al. 2015 use 1)
    remat: bool = False  # recompute decoder steps in the backward pass to save memory

    def __post_init__(self):
        _check_choices(self, "model")
        for name in ("embed_dim", "hidden_size", "num_layers"):
            _require(getattr(self, name) > 0, f"model.{name}", "must be positive")
        for name in ("src_vocab_size", "tgt_vocab_size"):
            v = getattr(self, name)
            _require(v == 0 or v > 4, f"model.{name}",
                     "must exceed the 4 special tokens (or be 0 to take it from the tokenizer)")
        _require(0.0 <= self.dropout < 1.0, "model.dropout", "must be in [0, 1)")
        _require(self.init_scale >= 0.0, "model.init_scale", "must be >= 0")
        _require(self.maxout_units >= 0, "model.maxout_units", "must be >= 0 (0: no maxout layer)")
        enc_dim = self.encoder_output_dim
        if self.bridge == "copy":
            _require(enc_dim == self.hidden_size, "model.bridge",
                     f"'copy' needs the encoder state size ({enc_dim}) to equal model.hidden_size "
                     f"({self.hidden_size}); use 'linear' for a bidirectional encoder")
        if self.attention == "dot":
            _require(enc_dim == self.hidden_size, "model.attention",
                     f"'dot' needs encoder outputs ({enc_dim}) and decoder states ({self.hidden_size}) "
                     "of one size; use 'general' or 'additive' with a bidirectional encoder")
        if self.input_feeding:
            _require(self.attention != "none" and self.attention_style == "luong", "model.input_feeding",
                     "needs Luong-style attention (model.attention != 'none', model.attention_style='luong')")
        if self.context_every_step:
            _require(self.attention == "none", "model.context_every_step",
                     "is the fixed-context decoder of Cho et al. 2014; it cannot be combined with attention")

    @property
    def encoder_output_dim(self) -> int:
        return self.hidden_size * (2 if self.bidirectional else 1)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where pairs come from and how they become padded batches.

    ``source`` is a synthetic task name (copy, reverse, sort, addition,
    dates), a directory of line-aligned ``{split}.{lang}`` files, a ``.tsv``
    file of pairs, or ``tfds:NAME`` for a TFDS catalog dataset.
    """

    source: str = "dates"
    src_lang: str = ""  # file suffix / TFDS language key of the source side
    tgt_lang: str = ""
    splits: tuple[str, str, str] = ("train", "validation", "test")  # names of train/validation/test
    data_dir: str = ""  # where TFDS prepares datasets; "" is TFDS's default
    synthetic_sizes: tuple[int, int, int] = (20000, 1000, 1000)
    synthetic_seed: int = 0  # the synthetic tasks' pairs are a function of this seed
    tokenizer: Literal["char", "word", "sentencepiece"] = "char"
    joint_vocab: bool = True
    vocab_size: int = 8000  # sentencepiece pieces
    sentencepiece_model: Literal["unigram", "bpe"] = "unigram"
    lowercase: bool = False  # word tokenizer
    min_freq: int = 1  # word / char tokenizer
    max_vocab_size: int = 0  # word tokenizer, 0 = no limit
    bucket_lengths: tuple[int, ...] = (16, 32, 64)  # padded lengths; the last is the max length
    overlong: Literal["drop", "truncate"] = "drop"
    # Append EOS to every source, as fairseq and JoeyNMT do: attention then has a position
    # that marks the end, which cures the decoder's length errors (stopping early, repeating).
    source_eos: bool = False
    batch_size: int = 64  # sentences per batch
    batch_tokens: int = 0  # >0: batch by padded tokens instead of sentences
    eval_batch_size: int = 256

    def __post_init__(self):
        _check_choices(self, "data")
        b = self.bucket_lengths
        _require(len(b) > 0 and all(x > 1 for x in b) and list(b) == sorted(set(b)),
                 "data.bucket_lengths", "must be a strictly increasing list of lengths > 1")
        _require(self.batch_size > 0, "data.batch_size", "must be positive")
        _require(self.eval_batch_size > 0, "data.eval_batch_size", "must be positive")
        _require(self.batch_tokens == 0 or self.batch_tokens >= b[-1], "data.batch_tokens",
                 f"must be 0 or at least the longest bucket ({b[-1]})")
        _require(self.vocab_size > 260, "data.vocab_size", "must exceed 260 (byte fallback and special pieces)")
        _require(len(self.synthetic_sizes) == 3 and min(self.synthetic_sizes) > 0,
                 "data.synthetic_sizes", "must be three positive sizes (train, validation, test)")

    @property
    def max_len(self) -> int:
        return self.bucket_lengths[-1]


@dataclasses.dataclass(frozen=True)
class ScheduledSamplingConfig:
    """Bengio et al. 2015: the probability eps_i of feeding the gold token at step i.

    linear: eps_i = max(min_prob, k - c*i); exponential: eps_i = k**i (k < 1);
    inverse_sigmoid: eps_i = k / (k + exp(i / k)) (k >= 1); constant: eps_i = k.
    """

    schedule: Literal["none", "constant", "linear", "exponential", "inverse_sigmoid"] = "none"
    k: float = 1.0
    c: float = 1e-4
    min_prob: float = 0.0
    mode: Literal["argmax", "sample"] = "argmax"  # how the model's own token is chosen

    def __post_init__(self):
        _check_choices(self, "train.scheduled_sampling")
        s = self.schedule
        if s == "exponential":
            _require(0.0 < self.k < 1.0, "train.scheduled_sampling.k", "must be in (0, 1) for the exponential schedule")
        if s == "inverse_sigmoid":
            _require(self.k >= 1.0, "train.scheduled_sampling.k", "must be >= 1 for the inverse sigmoid schedule")
        if s in ("constant", "linear"):
            _require(0.0 <= self.k <= 1.0, "train.scheduled_sampling.k", "must be in [0, 1]")
        _require(0.0 <= self.min_prob <= 1.0, "train.scheduled_sampling.min_prob", "must be in [0, 1]")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    num_steps: int = 2000
    num_epochs: float = 0.0  # >0: overrides num_steps with this many epochs
    optimizer: Literal["sgd", "momentum", "adam", "adamw"] = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_schedule: Literal["constant", "rsqrt", "halving", "plateau"] = "constant"
    warmup_steps: int = 0
    halving_start_epoch: float = 5.0  # halving: halve every half epoch after this epoch
    plateau_factor: float = 0.5
    plateau_patience: int = 2  # evaluations without improvement of the validation loss
    clip_norm: float = 1.0  # 0: no clipping
    label_smoothing: float = 0.0
    scheduled_sampling: ScheduledSamplingConfig = ScheduledSamplingConfig()
    eval_every: int = 500
    eval_max_examples: int = 0  # 0: the whole validation split
    log_every: int = 50
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    best_metric: str = "bleu"  # a validation metric name; higher is better except loss/perplexity
    parallelism: Literal["sharding", "pmap"] = "sharding"
    max_minutes: float = 0.0  # >0: stop (and save) after this many minutes of this invocation
    quiet: bool = False

    def __post_init__(self):
        _check_choices(self, "train")
        _require(self.num_steps > 0 or self.num_epochs > 0, "train.num_steps", "or train.num_epochs must be positive")
        _require(self.learning_rate > 0, "train.learning_rate", "must be positive")
        _require(self.clip_norm >= 0, "train.clip_norm", "must be >= 0")
        _require(0.0 <= self.label_smoothing < 1.0, "train.label_smoothing", "must be in [0, 1)")
        for name in ("eval_every", "log_every", "checkpoint_every", "keep_checkpoints"):
            _require(getattr(self, name) > 0, f"train.{name}", "must be positive")
        _require(self.warmup_steps >= 0, "train.warmup_steps", "must be >= 0")
        _require(0.0 < self.plateau_factor < 1.0, "train.plateau_factor", "must be in (0, 1)")


@dataclasses.dataclass(frozen=True)
class DecodeConfig:
    strategy: Literal["greedy", "beam", "sample"] = "greedy"
    beam_size: int = 5
    length_penalty: float = 0.6  # GNMT alpha
    coverage_penalty: float = 0.0  # GNMT beta (attention models)
    n_best: int = 1
    min_len: int = 0
    max_len_a: float = 0.0  # max_len = a * source_length + b, per row
    max_len_b: int = 64
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self):
        _check_choices(self, "decode")
        _require(self.beam_size >= 1, "decode.beam_size", "must be >= 1")
        _require(1 <= self.n_best <= self.beam_size, "decode.n_best", "must be between 1 and decode.beam_size")
        _require(self.max_len_b >= 1 or self.max_len_a > 0, "decode.max_len_b", "must be >= 1")
        _require(self.temperature > 0, "decode.temperature", "must be positive")
        _require(0.0 < self.top_p <= 1.0, "decode.top_p", "must be in (0, 1]")


@dataclasses.dataclass(frozen=True)
class Config:
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    decode: DecodeConfig = DecodeConfig()
    name: str = "custom"

    def replace(self, **sections: Any) -> Config:
        """``cfg.replace(model={"hidden_size": 256})``: a copy with fields of sections changed."""
        changes = {}
        for key, value in sections.items():
            current = getattr(self, key)
            changes[key] = dataclasses.replace(current, **value) if isinstance(value, dict) else value
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        return _from_dict(cls, d, "")

    @classmethod
    def from_json(cls, text: str) -> Config:
        return cls.from_dict(json.loads(text))


def _from_dict(cls: type, d: dict[str, Any], prefix: str) -> Any:
    if not isinstance(d, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping of fields.")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ConfigError(f"unknown config field {prefix}{unknown[0]}.")
    kwargs = {}
    for name, value in d.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _from_dict(hint, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, hint, f"{prefix}{name}")
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, field: str) -> Any:
    """JSON value -> the field's Python type (lists become tuples), checked."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{field} must be a list; got {value!r}.")
        args = typing.get_args(hint)
        inner = args[0]
        return tuple(_coerce(v, inner, field) for v in value)
    if origin is Literal or origin in (typing.Union, types.UnionType):
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{field} must be true or false; got {value!r}.")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{field} must be an integer; got {value!r}.")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{field} must be a number; got {value!r}.")
        return float(value)
    if hint is str and not isinstance(value, str):
        raise ConfigError(f"{field} must be a string; got {value!r}.")
    return value


def config_diff(a: Config, b: Config) -> list[str]:
    """Dotted names of the fields where two configs differ."""
    out: list[str] = []

    def walk(x: Any, y: Any, prefix: str) -> None:
        if dataclasses.is_dataclass(x):
            for f in dataclasses.fields(x):
                walk(getattr(x, f.name), getattr(y, f.name), f"{prefix}{f.name}.")
        elif x != y:
            out.append(prefix.rstrip("."))

    walk(a, b, "")
    return out


def get_field(cfg: Any, dotted: str) -> Any:
    """``get_field(cfg, "train.scheduled_sampling.k")``."""
    for name in dotted.split("."):
        cfg = getattr(cfg, name)
    return cfg
