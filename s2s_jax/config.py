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


def _field(default: Any, doc: str, *, params: bool = False, resumable: bool = False,
           tokenizer: tuple[str, ...] = (), translate: bool = False) -> Any:
    """A config field with its one-sentence ``doc`` (the command line's --help) and what it means
    beyond its value, read by :func:`field_metadata`:

    - ``params``: the trained parameters depend on it; a checkpoint is refused by a config that
      changes it (s2s_jax/checkpoint.py);
    - ``resumable``: a resumed run may change it (the rest must match the workdir's run);
    - ``tokenizer``: the tokenizer kinds it shapes; a saved tokenizer records it (s2s_jax/vocab.py);
    - ``translate``: a translation may override it (``Translator.translate(..., option=value)``).
    """
    meta = {"doc": doc, "params": params, "resumable": resumable, "tokenizer": tokenizer, "translate": translate}
    return dataclasses.field(default=default, metadata=meta)


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

    src_vocab_size: int = _field(
        0, "Source vocabulary size; 0 takes it from the tokenizer trained on the data.", params=True)
    tgt_vocab_size: int = _field(
        0, "Target vocabulary size; 0 takes it from the tokenizer trained on the data.", params=True)
    embed_dim: int = _field(64, "Width of the token embeddings.", params=True)
    hidden_size: int = _field(
        128, "Units of each recurrent layer: per direction in the encoder, and the decoder's size.", params=True)
    num_layers: int = _field(1, "Stacked recurrent layers in the encoder and in the decoder.", params=True)
    cell: CellKind = _field("lstm", "The recurrent cell of encoder and decoder.", params=True)
    bidirectional: bool = _field(
        False, "Read the source in both directions and concatenate the two states.", params=True)
    bridge: Literal["copy", "zero", "linear"] = _field(
        "copy", "How the encoder's final state starts the decoder: as it is, zeros, or through a linear layer.",
        params=True)
    context_every_step: bool = _field(
        False, "Feed the fixed context vector to every decoder step and to the generator (Cho et al. 2014).",
        params=True)
    attention: AttentionKind = _field(
        "none", "The attention score over the encoder outputs (Luong et al. 2015); none for a fixed context.",
        params=True)
    attention_style: Literal["luong", "bahdanau"] = _field(
        "luong", "Where attention sits in the decoder step (see the class docstring).", params=True)
    input_feeding: bool = _field(
        False, "Feed the previous attentional state into the next decoder step (Luong et al. 2015, sec. 3.3).",
        params=True)
    reverse_source: bool = _field(False, "Read the source backwards (Sutskever et al. 2014).", params=True)
    dropout: float = _field(0.0, "Dropout rate on embeddings and between layers during training.")
    tie_embeddings: bool = _field(
        False, "Share the target embedding matrix with the generator's output layer.", params=True)
    maxout_units: int = _field(
        0, "Units of the generator's deep maxout layer, 0 for none (Bahdanau et al. 2015 use 500).", params=True)
    dtype: Literal["float32", "bfloat16", "auto"] = _field(
        "float32", "Precision of the matrix products; auto: bfloat16 on hardware with bfloat16 units (precision.py).")
    init_scale: float = _field(
        0.0, "When positive, every parameter starts uniform in [-s, s] (Sutskever et al. 2014 use 0.08).", params=True)
    forget_bias: float = _field(
        0.0, "Added to the LSTM forget gate's bias (Jozefowicz et al. 2015 use 1).", params=True)
    remat: bool = _field(False, "Recompute decoder steps in the backward pass to save memory.")

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

    source: str = _field(
        "dates", "A synthetic task, a directory of {split}.{lang} files, a .tsv file of pairs, or tfds:NAME.",
        params=True)
    src_lang: str = _field("", "File suffix or TFDS feature key of the source side.", params=True)
    tgt_lang: str = _field("", "File suffix or TFDS feature key of the target side.", params=True)
    splits: tuple[str, str, str] = _field(
        ("train", "validation", "test"), "Names (or TFDS slices) of the train, validation and test splits.")
    data_dir: str = _field("", "Where TFDS prepares datasets; empty for TFDS's default.")
    synthetic_sizes: tuple[int, int, int] = _field(
        (20000, 1000, 1000), "Pairs in the train, validation and test splits of a synthetic task.")
    synthetic_seed: int = _field(0, "Seed of a synthetic task's pairs.")
    tokenizer: Literal["char", "word", "sentencepiece"] = _field(
        "char", "How text becomes tokens.", params=True, tokenizer=("char", "word", "sentencepiece"))
    joint_vocab: bool = _field(
        True, "One vocabulary for both sides, trained on both.", params=True,
        tokenizer=("char", "word", "sentencepiece"))
    vocab_size: int = _field(8000, "Pieces of a sentencepiece vocabulary.", params=True, tokenizer=("sentencepiece",))
    sentencepiece_model: Literal["unigram", "bpe"] = _field(
        "unigram", "The sentencepiece algorithm.", tokenizer=("sentencepiece",))
    lowercase: bool = _field(
        False, "Lowercase text before the word tokenizer splits it.", params=True, tokenizer=("word",))
    min_freq: int = _field(
        1, "Fewest occurrences for a word or character to get its own token.", tokenizer=("char", "word"))
    max_vocab_size: int = _field(0, "Most words in a word vocabulary, 0 for no limit.", tokenizer=("word",))
    bucket_lengths: tuple[int, ...] = _field(
        (16, 32, 64), "Padded lengths of the batches; the last is the longest sequence kept.")
    overlong: Literal["drop", "truncate"] = _field(
        "drop", "What happens to a training pair longer than the longest bucket.")
    source_eos: bool = _field(
        False, "Append EOS to every source, as fairseq and JoeyNMT do, so attention can find the end.")
    batch_size: int = _field(64, "Sentences per training batch.")
    batch_tokens: int = _field(0, "When positive, batch by this many padded tokens instead of by sentences.")
    eval_batch_size: int = _field(256, "Sentences per evaluation and decoding batch.")

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

    schedule: Literal["none", "constant", "linear", "exponential", "inverse_sigmoid"] = _field(
        "none", "The decay of the teacher-forcing probability; none is plain teacher forcing.")
    k: float = _field(1.0, "The schedule's k (see the class docstring).")
    c: float = _field(1e-4, "The slope c of the linear schedule.")
    min_prob: float = _field(0.0, "The floor of the linear schedule.")
    mode: Literal["argmax", "sample"] = _field(
        "argmax", "How the model's own token is chosen: its most likely token or a sample.")

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
    seed: int = _field(0, "Seed of the initialisation, the data order, dropout and sampling.")
    seeds: tuple[int, ...] = _field(
        (), "Train these seeds together in one compiled step, each in WORKDIR/seed_N; empty trains train.seed.")
    seed_data_order: bool = _field(
        False, "With several seeds, give each seed the data order of its own seed instead of that of train.seed.")
    num_steps: int = _field(2000, "Optimizer steps to train for.", resumable=True)
    num_epochs: float = _field(0.0, "When positive, train this many epochs instead of num_steps.", resumable=True)
    optimizer: Literal["sgd", "momentum", "adam", "adamw"] = _field("adam", "The Optax optimizer.")
    learning_rate: float = _field(1e-3, "The peak learning rate.")
    momentum: float = _field(0.9, "Momentum of the momentum optimizer.")
    weight_decay: float = _field(0.0, "Decoupled weight decay of adamw.")
    lr_schedule: Literal["constant", "rsqrt", "halving", "plateau"] = _field(
        "constant", "The learning-rate schedule (s2s_jax/training/schedules.py).")
    warmup_steps: int = _field(0, "Steps of linear warmup; the rsqrt schedule's w.")
    halving_start_epoch: float = _field(
        5.0, "With the halving schedule, the epoch after which the rate halves every half epoch.")
    plateau_factor: float = _field(
        0.5, "With the plateau schedule, the factor applied to the rate when the validation loss stops improving.")
    plateau_patience: int = _field(
        2, "With the plateau schedule, evaluations without a better validation loss before the rate is lowered.")
    clip_norm: float = _field(1.0, "Clip gradients to this global norm, 0 for no clipping.")
    label_smoothing: float = _field(0.0, "Label smoothing of the cross-entropy.")
    scheduled_sampling: ScheduledSamplingConfig = _field(
        ScheduledSamplingConfig(), "Scheduled sampling (Bengio et al. 2015).")
    eval_every: int = _field(500, "Steps between evaluations on the validation split.", resumable=True)
    eval_max_examples: int = _field(0, "Validation pairs decoded at each evaluation, 0 for all.", resumable=True)
    log_every: int = _field(50, "Steps between training log records.", resumable=True)
    checkpoint_every: int = _field(1000, "Steps between checkpoints.", resumable=True)
    keep_checkpoints: int = _field(3, "Latest checkpoints kept, besides the best.")
    best_metric: str = _field(
        "bleu", "The validation metric that picks the best checkpoint; higher is better except loss and perplexity.")
    parallelism: Literal["sharding", "pmap"] = _field(
        "sharding", "How the step spreads over several devices: jit with sharded batches, or pmap.", resumable=True)
    max_minutes: float = _field(
        0.0, "When positive, stop (and save) after this many minutes of this invocation.", resumable=True)
    quiet: bool = _field(False, "Log only warnings, and no progress bar.", resumable=True)

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
        twice = sorted({s for s in self.seeds if self.seeds.count(s) > 1})
        _require(not twice, "train.seeds", f"names seed {twice[0] if twice else ''} twice; give each seed once")


@dataclasses.dataclass(frozen=True)
class DecodeConfig:
    strategy: Literal["greedy", "beam", "sample"] = _field("greedy", "How outputs are decoded at evaluation.")
    beam_size: int = _field(5, "Hypotheses kept by beam search.")
    length_penalty: float = _field(0.6, "GNMT length penalty alpha of beam search.", translate=True)
    coverage_penalty: float = _field(
        0.0, "GNMT coverage penalty beta of beam search (attention models).", translate=True)
    n_best: int = _field(1, "Hypotheses returned per sentence by beam search.")
    min_len: int = _field(0, "Fewest output tokens before EOS may end an output.", translate=True)
    max_len_a: float = _field(0.0, "The a of the output limit a * source length + b.", translate=True)
    max_len_b: int = _field(
        64, "The b of the output limit a * source length + b (the limit when a is 0).", translate=True)
    temperature: float = _field(1.0, "Softmax temperature of sampling.")
    top_k: int = _field(0, "Sample among the k most likely tokens, 0 for all.")
    top_p: float = _field(1.0, "Sample within the smallest set of tokens holding this probability (nucleus sampling).")

    def __post_init__(self):
        _check_choices(self, "decode")
        _require(self.beam_size >= 1, "decode.beam_size", "must be >= 1")
        _require(1 <= self.n_best <= self.beam_size, "decode.n_best", "must be between 1 and decode.beam_size")
        _require(self.max_len_b >= 1 or self.max_len_a > 0, "decode.max_len_b", "must be >= 1")
        _require(self.temperature > 0, "decode.temperature", "must be positive")
        _require(0.0 < self.top_p <= 1.0, "decode.top_p", "must be in (0, 1]")

    def with_beam_size(self, beam_size: int | None = None, n_best: int | None = None) -> DecodeConfig:
        """These settings decoding greedily (``beam_size`` 1), by beam search of that width (> 1),
        or by their own strategy (None), returning ``n_best`` hypotheses (None: their own
        ``n_best`` with their own strategy, else 1)."""
        if beam_size is None and n_best is None:
            return self
        if n_best is None:
            n_best = 1
        if beam_size is None:
            strategy, beam_size = self.strategy, self.beam_size
        else:
            strategy = "beam" if beam_size > 1 else "greedy"
        width = beam_size if strategy == "beam" else 1
        if not 1 <= n_best <= width:
            raise ConfigError(f"n_best={n_best} needs a beam_size of at least {n_best} (got {width}).")
        return dataclasses.replace(self, strategy=strategy, beam_size=beam_size, n_best=n_best)


@dataclasses.dataclass(frozen=True)
class Config:
    model: ModelConfig = _field(ModelConfig(), "The encoder-decoder architecture.")
    data: DataConfig = _field(DataConfig(), "The data and its batches.")
    train: TrainConfig = _field(TrainConfig(), "The optimisation and the training loop.")
    decode: DecodeConfig = _field(DecodeConfig(), "Decoding at evaluation.", resumable=True)
    name: str = _field("custom", "The config's name (the preset's).")

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


def best_mode(metric: str) -> Literal["min", "max"]:
    """Whether a lower ("min") or higher ("max") value of the validation ``metric`` is better."""
    return "min" if metric in ("loss", "perplexity") else "max"


def field_metadata(dotted: str, cls: type = Config) -> dict[str, Any]:
    """The metadata of field ``dotted`` (``"train.num_steps"``) of :func:`_field`; a field
    inherits ``resumable`` from its section (every decode setting is resumable)."""
    meta: dict[str, Any] = {}
    for name in dotted.split("."):
        f = {f.name: f for f in dataclasses.fields(cls)}[name]
        meta = {**f.metadata, "resumable": meta.get("resumable", False) or f.metadata["resumable"]}
        cls = typing.get_type_hints(cls)[name]
    return meta


def fields_where(key: str, cls: type = Config, prefix: str = "") -> list[str]:
    """Dotted names of the leaf fields whose metadata ``key`` is set (through their section too)."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        dotted = prefix + f.name
        if dataclasses.is_dataclass(hints[f.name]):
            out += fields_where(key, hints[f.name], dotted + ".")
        elif field_metadata(dotted)[key]:
            out.append(dotted)
    return out
