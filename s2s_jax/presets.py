"""Named configurations: ``get_preset(name)``, ``list_presets()``.

A preset is a function returning a :class:`Config`; register one with
``@preset``. Override fields with ``cfg.replace(model={...})`` in Python or
``--model.hidden-size 256`` on the command line.
"""

from __future__ import annotations

from collections.abc import Callable

from s2s_jax.config import Config, DataConfig, DecodeConfig, ModelConfig, TrainConfig
from s2s_jax.errors import ConfigError

_PRESETS: dict[str, Callable[[], Config]] = {}


def preset(fn: Callable[[], Config]) -> Callable[[], Config]:
    _PRESETS[fn.__name__] = fn
    return fn


def list_presets() -> list[str]:
    return sorted(_PRESETS)


def get_preset(name: str) -> Config:
    if name not in _PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(list_presets())}.")
    return _PRESETS[name]()


def _synthetic(task: str, **model) -> Config:
    return Config(
        name=task,
        model=ModelConfig(**{"embed_dim": 32, "hidden_size": 128, "cell": "gru", **model}),
        data=DataConfig(source=task, tokenizer="char", bucket_lengths=(8, 16), batch_size=64),
        train=TrainConfig(num_steps=1500, learning_rate=3e-3, eval_every=500, checkpoint_every=500,
                          eval_max_examples=500),
        decode=DecodeConfig(max_len_b=16),
    )


@preset
def dates() -> Config:
    """Date normalisation ("saturday 5 march 2019" -> "2019-03-05") with a bidirectional
    GRU encoder and Luong attention with input feeding: the quickstart (``make demo``)."""
    return Config(
        name="dates",
        model=ModelConfig(embed_dim=32, hidden_size=128, cell="gru", bidirectional=True, bridge="linear",
                          attention="general", attention_style="luong", input_feeding=True),
        data=DataConfig(source="dates", tokenizer="char", bucket_lengths=(12, 32), batch_size=128),
        train=TrainConfig(num_steps=600, learning_rate=3e-3, eval_every=300, checkpoint_every=300,
                          eval_max_examples=500, log_every=50),
        decode=DecodeConfig(max_len_b=12),
    )


@preset
def copy() -> Config:
    """Copy a string of up to 12 symbols: the smallest sanity check."""
    return _synthetic("copy")


@preset
def reverse() -> Config:
    return _synthetic("reverse", attention="dot")


@preset
def sort() -> Config:
    return _synthetic("sort", attention="dot")


@preset
def addition() -> Config:
    """"123+45" -> "168", a reversed-source LSTM (reading digits least significant first)."""
    cfg = _synthetic("addition", cell="lstm", reverse_source=True)
    return cfg.replace(decode={"max_len_b": 8})


@preset
def multi30k() -> Config:
    """Multi30k German->English (Elliott et al. 2016) from ``../shared/data/multi30k`` (relative to
    the working directory: run from the repository root): a bidirectional GRU encoder, a GRU
    decoder with additive attention in the Luong arrangement with input feeding (the recurrent
    decoder of JoeyNMT), a joint SentencePiece vocabulary of 8000 pieces.

    Buckets: joint unigram pieces of the training split are 15 long on average and at
    most 55 (source) / 53 (target + EOS); (16, 24, 32, 64) pads to 78-80% real tokens with
    15 (source, target) bucket pairs (compiled programs), as much as (16, 24, 32, 48, 64) does with 18.
    One epoch is about 236 batches of 128 sentences; evaluation runs once an epoch.
    """
    return Config(
        name="multi30k",
        model=ModelConfig(embed_dim=256, hidden_size=512, cell="gru", bidirectional=True, bridge="linear",
                          attention="additive", attention_style="luong", input_feeding=True, dropout=0.3),
        data=DataConfig(source="../shared/data/multi30k", src_lang="de", tgt_lang="en",
                        splits=("train", "val", "test2016"), tokenizer="sentencepiece", joint_vocab=True,
                        vocab_size=8000, bucket_lengths=(16, 24, 32, 64), batch_size=128, eval_batch_size=256),
        train=TrainConfig(num_epochs=10, optimizer="adam", learning_rate=1e-3, clip_norm=1.0, eval_every=236,
                          checkpoint_every=236, log_every=50, best_metric="bleu"),
        decode=DecodeConfig(strategy="greedy", max_len_a=1.5, max_len_b=10),
    )


@preset
def multi30k_tpu() -> Config:
    """:func:`multi30k` with bfloat16 activations (parameters, optimizer state and loss stay
    float32), for TPUs, whose matrix units take bfloat16 natively. Its 128 sentences per batch
    divide evenly over 4, 8, 16 or 32 TPU devices (see TPU_SETUP.md)."""
    return multi30k().replace(name="multi30k_tpu", model={"dtype": "bfloat16"})
