"""s2s_jax: recurrent sequence-to-sequence models in JAX/Flax.

The public API (fixed names, see the README):

    import s2s_jax as s2s
    cfg = s2s.get_preset("dates")
    data, batches = s2s.load_data(cfg)
    state = s2s.create_train_state(data.config, key)
    state, metrics = s2s.train_step(state, next(batches), key)
    tokens = s2s.greedy_decode(state.model, state.params, src, max_len=50)
    s2s.save(workdir, state, data.src_tokenizer, data.tgt_tokenizer)
    cfg, state, src_tokenizer, tgt_tokenizer = s2s.restore(workdir)

``import s2s_jax`` loads the model, the train step and the decoders (JAX, Flax, Optax). The
names built on the heavier libraries load with their module on first use: the input pipeline
(grain), checkpoints (Orbax), the loop and the translator (also sacreBLEU and TensorBoard) and
the figures (matplotlib).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from s2s_jax.config import Config, DataConfig, DecodeConfig, ModelConfig, ScheduledSamplingConfig, TrainConfig
from s2s_jax.decoding import beam_search, decode, greedy_decode, sample_decode
from s2s_jax.errors import UserError
from s2s_jax.models.seq2seq import Seq2Seq, init_decoder
from s2s_jax.presets import get_preset, list_presets
from s2s_jax.training.step import TrainState, create_train_state, eval_step, train_step
from s2s_jax.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID

if TYPE_CHECKING:
    from s2s_jax.checkpoint import Restored, restore, save
    from s2s_jax.data.pipeline import load_data, pad_to_bucket
    from s2s_jax.loop import train
    from s2s_jax.plots import attention_examples, attention_heatmap, training_curves
    from s2s_jax.translator import Hypothesis, Translator

_LAZY = {
    "Restored": "s2s_jax.checkpoint",
    "restore": "s2s_jax.checkpoint",
    "save": "s2s_jax.checkpoint",
    "load_data": "s2s_jax.data.pipeline",
    "pad_to_bucket": "s2s_jax.data.pipeline",
    "train": "s2s_jax.loop",
    "attention_examples": "s2s_jax.plots",
    "attention_heatmap": "s2s_jax.plots",
    "training_curves": "s2s_jax.plots",
    "Hypothesis": "s2s_jax.translator",
    "Translator": "s2s_jax.translator",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 's2s_jax' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "BOS_ID",
    "EOS_ID",
    "PAD_ID",
    "UNK_ID",
    "Config",
    "DataConfig",
    "DecodeConfig",
    "Hypothesis",
    "ModelConfig",
    "Restored",
    "ScheduledSamplingConfig",
    "Seq2Seq",
    "TrainConfig",
    "TrainState",
    "Translator",
    "UserError",
    "attention_examples",
    "attention_heatmap",
    "beam_search",
    "create_train_state",
    "decode",
    "eval_step",
    "get_preset",
    "greedy_decode",
    "init_decoder",
    "list_presets",
    "load_data",
    "pad_to_bucket",
    "restore",
    "sample_decode",
    "save",
    "train",
    "train_step",
    "training_curves",
]
