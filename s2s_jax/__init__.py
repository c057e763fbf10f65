"""s2s_jax: recurrent sequence-to-sequence models in JAX/Flax.

The public API (fixed names, see the README):

    import s2s_jax as s2s
    cfg = s2s.get_preset("dates")
    state = s2s.create_train_state(cfg, key)
    state, metrics = s2s.train_step(state, batch, key)
    tokens = s2s.greedy_decode(model, params, src, max_len=50)
"""

from s2s_jax.config import Config, DataConfig, DecodeConfig, ModelConfig, ScheduledSamplingConfig, TrainConfig
from s2s_jax.decoding import beam_search, greedy_decode, sample_decode
from s2s_jax.errors import UserError
from s2s_jax.models.seq2seq import Seq2Seq, init_decoder
from s2s_jax.presets import get_preset, list_presets
from s2s_jax.training.loop import train
from s2s_jax.training.step import TrainState, create_train_state, eval_step, train_step
from s2s_jax.translator import Hypothesis, Translator
from s2s_jax.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID

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
    "ScheduledSamplingConfig",
    "Seq2Seq",
    "TrainConfig",
    "TrainState",
    "Translator",
    "UserError",
    "beam_search",
    "create_train_state",
    "eval_step",
    "get_preset",
    "greedy_decode",
    "init_decoder",
    "list_presets",
    "sample_decode",
    "train",
    "train_step",
]
