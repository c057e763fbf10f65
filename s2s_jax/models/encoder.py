"""The encoder: source embedding and stacked, optionally bidirectional, RNN layers.

Padding-aware: PAD positions never change a state, so each row's final state
is its state at its true length, and the backward direction starts at the
row's last real token (it runs forward over the row with its real tokens
reversed in place).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from s2s_jax.config import ModelConfig
from s2s_jax.models.cells import GATES, Carry, GateProjection, Gates, RecurrentCell
from s2s_jax.models.recurrence import recurrence
from s2s_jax.models.token_tables import lookup
from s2s_jax.precision import compute_dtype
from s2s_jax.vocab import PAD_ID


@struct.dataclass
class EncoderOutput:
    """What the decoder reads. ``memory``: [batch, src_len, enc_dim] outputs aligned
    with the source tokens; ``keys``: attention keys of ``memory`` computed once per
    sentence; ``mask``: [batch, src_len] real tokens; ``final``: per layer, the
    final carry (directions concatenated); ``context``: [batch, enc_dim] the top
    layer's final hidden state, the context vector; ``context_gates``: per gate [batch, src_len,
    hidden], the decoder's projection of every memory position into its cell input, where decoding
    has computed it (:func:`~s2s_jax.models.seq2seq.init_decoder`), else None."""

    memory: jax.Array
    keys: jax.Array
    mask: jax.Array
    final: tuple[Carry, ...]
    context: jax.Array
    context_gates: tuple[jax.Array, ...] | None = None


def reverse_rows(x: jax.Array, lengths: jax.Array, time_axis: int = 1) -> jax.Array:
    """Reverse the first ``lengths[b]`` positions of each row of ``x`` ([batch, time, ...], or
    [time, batch, ...] with ``time_axis=0``), leaving padding in place. Its own inverse."""
    t = jnp.arange(x.shape[time_axis])[None, :]
    idx = jnp.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)  # [batch, time]
    idx = idx.T if time_axis == 0 else idx
    idx = idx.reshape(idx.shape + (1,) * (x.ndim - 2))
    return jnp.take_along_axis(x, idx, axis=time_axis)


def run_layer(cell: RecurrentCell, x_proj: Gates, mask: jax.Array, carry0: Carry) -> tuple[Carry, jax.Array]:
    """Run ``cell`` over time, time-major. x_proj: per gate [time, batch, hidden]; mask:
    [time, batch]. Returns the final carry and the outputs [time, batch, hidden] (zero at PAD).

    Time-major because the loop steps over the leading axis: a layer projected from a time-major
    input, and its outputs read by the next layer, need no [batch, time] <-> [time, batch] copies
    of each gate's projection and gradient (BENCHMARKS.md, "Time-major layers")."""
    kernels, biases = cell.weights()
    carry, ys = recurrence(cell.kind, kernels, biases, x_proj, mask, carry0, jnp.dtype(cell.dtype).name)
    return carry, ys * mask[..., None]


class Encoder(nn.Module):
    cfg: ModelConfig

    @nn.compact
    def __call__(self, src: jax.Array, *, train: bool = False,
                 token_gates: dict[str, Gates] | None = None) -> tuple[jax.Array, jax.Array, tuple[Carry, ...]]:
        """src: [batch, src_len] int -> (memory [batch, src_len, enc_dim], mask, final carries).
        ``token_gates`` (:func:`source_token_gates`, for decoding) gives the first layer's input
        projection by looking it up."""
        cfg = self.cfg
        dtype = compute_dtype(cfg.dtype)
        mask = src != PAD_ID
        lengths = mask.sum(axis=1)
        if cfg.reverse_source:  # Sutskever et al. 2014: read the source backwards
            src = reverse_rows(src, lengths)
        drop = nn.Dropout(cfg.dropout, deterministic=not train)
        # Looked up in float32: a bfloat16 copy of the table would sum its gradient in bfloat16.
        # Time-major from the token ids on (run_layer); the memory is made batch-major once, at the end.
        x = drop(nn.Embed(cfg.src_vocab_size, cfg.embed_dim, name="embed")(src.T))
        mask_tm = mask.T
        finals = []
        for layer in range(cfg.num_layers):
            outputs, carries = [], []
            for direction in ("fwd", "bwd") if cfg.bidirectional else ("fwd",):
                name = f"layer{layer}_{direction}"
                looked_up = layer == 0 and token_gates is not None
                inp = src.T if looked_up else x
                inp = inp if direction == "fwd" else reverse_rows(inp, lengths, time_axis=0)
                if looked_up:
                    x_proj = tuple(lookup(g, inp) for g in token_gates[direction])
                else:
                    x_proj = GateProjection(GATES[cfg.cell], cfg.hidden_size, dtype=dtype, name=f"{name}_input")(inp)
                cell = RecurrentCell(cfg.cell, cfg.hidden_size, dtype=dtype, forget_bias=cfg.forget_bias, name=name)
                carry, y = run_layer(cell, x_proj, mask_tm, cell.initial_carry(src.shape[0]))
                outputs.append(y if direction == "fwd" else reverse_rows(y, lengths, time_axis=0))
                carries.append(carry)
            x = jnp.concatenate(outputs, axis=-1)
            if layer < cfg.num_layers - 1:
                x = drop(x)
            finals.append(jax.tree_util.tree_map(lambda *c: jnp.concatenate(c, axis=-1), *carries))
        if cfg.reverse_source:  # realign the outputs with the source tokens as given
            x = reverse_rows(x, lengths, time_axis=0)
        x = jnp.swapaxes(x, 0, 1)
        return x, mask, tuple(finals)


def source_token_gates(cfg: ModelConfig, params) -> dict[str, Gates]:
    """The encoder's ``params`` -> per direction of the first layer ("fwd", "bwd"), per gate
    [src_vocab, hidden]: every source token's input projection, bias included, what the encoder
    computes for it without dropout."""
    projection = GateProjection(GATES[cfg.cell], cfg.hidden_size, dtype=compute_dtype(cfg.dtype))
    embedding = params["embed"]["embedding"]
    return {d: projection.apply({"params": params[f"layer0_{d}_input"]}, embedding)
            for d in (("fwd", "bwd") if cfg.bidirectional else ("fwd",))}


def context_vector(cfg: ModelConfig, final: tuple[Carry, ...]) -> jax.Array:
    """The top layer's final hidden state [batch, enc_dim] (h of an LSTM carry)."""
    top = final[-1]
    return top[1] if cfg.cell == "lstm" else top

