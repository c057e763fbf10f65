"""The model shapes of ``../shared/bench/torch_reference.py``, as s2s_jax configs,
with their matmul FLOPs (for a rough utilisation figure)."""

from __future__ import annotations

import numpy as np

from s2s_jax.config import Config, DataConfig, ModelConfig, TrainConfig
from s2s_jax.vocab import BOS_ID, EOS_ID

# lstm: 2-layer LSTM encoder and decoder, emb 256, hidden 512, the final encoder
# state initialises the decoder. attention: bidirectional GRU encoder (512 per
# direction), tanh bridge to a 512 GRU decoder, additive attention with the previous
# state as query, decoder input [emb; context], generator over [h; context; emb].
SHAPES = {
    "lstm": dict(cell="lstm", num_layers=2, embed_dim=256, hidden_size=512, bridge="copy"),
    "attention": dict(cell="gru", bidirectional=True, embed_dim=256, hidden_size=512, bridge="linear",
                      attention="additive", attention_style="bahdanau"),
}


def shape_config(shape: str, vocab: int, batch: int, length: int, **model) -> Config:
    """Adam 1e-3 and global-norm clipping at 1.0, as the reference trains."""
    return Config(
        model=ModelConfig(src_vocab_size=vocab, tgt_vocab_size=vocab, **{**SHAPES[shape], **model}),
        data=DataConfig(batch_size=batch, bucket_lengths=(length + 1,)),
        train=TrainConfig(optimizer="adam", learning_rate=1e-3, clip_norm=1.0),
    )


def random_batch(batch: int, src_len: int, tgt_len: int, vocab: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Full-length rows as the reference draws them (tokens 4..vocab-1); the target row
    holds tgt_len decoder inputs (BOS + tgt_len-1 tokens) and tgt_len labels (... + EOS)."""
    rng = np.random.default_rng(seed)
    src = rng.integers(4, vocab, (batch, src_len), dtype=np.int32)
    tgt = rng.integers(4, vocab, (batch, tgt_len + 1), dtype=np.int32)
    tgt[:, 0], tgt[:, -1] = BOS_ID, EOS_ID
    return {"src": src, "tgt": tgt}


def train_flops(shape: str, batch: int, src_len: int, tgt_len: int, vocab: int) -> float:
    """Matmul FLOPs of one training step (forward + backward = 3x forward)."""
    m = SHAPES[shape]
    e, h = m["embed_dim"], m["hidden_size"]

    def rnn(inp: int, gates: int) -> float:  # per token: input and recurrent projections
        return 2.0 * (inp + h) * gates * h

    if shape == "lstm":
        per_src = rnn(e, 4) + rnn(h, 4)
        per_tgt = rnn(e, 4) + rnn(h, 4) + 2.0 * h * vocab
    else:
        per_src = 2 * rnn(e, 3) + 2.0 * 2 * h * h  # two directions, attention keys
        per_tgt = (rnn(e + 2 * h, 3) + 2.0 * h * h  # cell, attention query
                   + 2.0 * src_len * (h + 2 * h)  # scores (v . tanh) and context
                   + 2.0 * (h + 2 * h + e) * vocab)  # generator
    return 3.0 * batch * (src_len * per_src + tgt_len * per_tgt)
