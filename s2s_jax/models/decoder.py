"""The decoder: target embedding, stacked cells, optional attention, generator.

One step, :meth:`Decoder.step`, is the only place a decoder state advances;
teacher-forced training, scheduled sampling and every decoding strategy run
it. The variants of the seed papers:

- plain (Sutskever et al. 2014): the context vector is only the initial state;
  the generator reads the top hidden state.
- ``context_every_step`` (Cho et al. 2014, eqs. in sec. 2.2): the context vector c
  joins the cell input ``[emb; c]`` at every step and the generator reads
  ``[h; c; emb]``.
- attention, ``attention_style="bahdanau"`` (Bahdanau et al. 2015, eqs. 4-6): the
  previous state queries the memory, the context joins the cell input, and the
  generator reads ``[h; c; emb]``.
- attention, ``attention_style="luong"`` (Luong et al. 2015, eq. 5): the new state
  queries the memory and the generator reads the attentional state
  ``tanh(W_c [c; h])``; ``input_feeding`` (sec. 3.3) adds the previous attentional
  state to the cell input.

``maxout_units`` puts the papers' deep output layer between any of these and the
vocabulary (:mod:`s2s_jax.models.generator`).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from s2s_jax.config import ModelConfig
from s2s_jax.models.attention import Attention, weighted_sum
from s2s_jax.models.cells import GATES, Carry, GateProjection, Gates, RecurrentCell, add_gates
from s2s_jax.models.encoder import EncoderOutput, run_layer
from s2s_jax.models.generator import Generator
from s2s_jax.models.matmul import Dense
from s2s_jax.models.token_tables import lookup
from s2s_jax.precision import compute_dtype


@struct.dataclass
class DecoderState:
    """cells: per-layer carries; feed: [batch, hidden] the previous attentional state
    (input feeding; [batch, 0] otherwise); attention: [batch, src_len] the weights of
    the latest step ([batch, 0] without attention)."""

    cells: tuple[Carry, ...]
    feed: jax.Array
    attention: jax.Array


class Decoder(nn.Module):
    cfg: ModelConfig

    def setup(self):
        cfg = self.cfg
        dtype = compute_dtype(cfg.dtype)
        gates, h = GATES[cfg.cell], cfg.hidden_size
        self.embed = nn.Embed(cfg.tgt_vocab_size, cfg.embed_dim)  # float32: see the encoder's
        # The first layer's input projection, split by input part, so the embedding
        # part can be computed for all time steps at once when teacher forcing.
        self.embed_input = GateProjection(gates, h, dtype=dtype)
        if self.reads_context_before_cell:
            self.context_input = GateProjection(gates, h, use_bias=False, dtype=dtype)
        if cfg.input_feeding:
            self.feed_input = GateProjection(gates, h, use_bias=False, dtype=dtype)
        self.layer_inputs = [GateProjection(gates, h, dtype=dtype, name=f"layer{i}_input")
                             for i in range(1, cfg.num_layers)]
        self.cells = [RecurrentCell(cfg.cell, h, dtype=dtype, forget_bias=cfg.forget_bias, name=f"layer{i}")
                      for i in range(cfg.num_layers)]
        if cfg.attention != "none":
            self.attention = Attention(cfg.attention, cfg.hidden_size, dtype=dtype)
            if cfg.attention_style == "luong":
                self.attentional = Dense(cfg.hidden_size, use_bias=False, dtype=dtype)
        self.dropout = nn.Dropout(cfg.dropout)
        self.generator = Generator(cfg.tgt_vocab_size, self.embed if cfg.tie_embeddings else None,
                                   maxout_units=cfg.maxout_units, dtype=dtype)

    @property
    def reads_context_before_cell(self) -> bool:
        cfg = self.cfg
        return cfg.context_every_step or is_bahdanau(cfg)

    def attention_keys(self, memory: jax.Array) -> jax.Array:
        if self.cfg.attention == "none":
            return memory[..., :0]
        return self.attention.keys(memory)

    def initial_state(self, cells: tuple[Carry, ...], src_len: int) -> DecoderState:
        cfg = self.cfg
        batch = jax.tree_util.tree_leaves(cells)[0].shape[0]
        feed = jnp.zeros((batch, cfg.hidden_size if cfg.input_feeding else 0), jnp.float32)
        attention = jnp.zeros((batch, src_len if cfg.attention != "none" else 0), jnp.float32)
        return DecoderState(cells=cells, feed=feed, attention=attention)

    def embed_tokens(self, tokens: jax.Array, train: bool = False,
                     token_gates: Gates | None = None) -> tuple[jax.Array, Gates]:
        """tokens [...] -> (embeddings [..., embed], first-layer input projection, per gate [..., hidden]).
        ``token_gates`` (:meth:`token_gates`, for decoding) gives the projection by looking it up."""
        emb = self.dropout(self.embed(tokens), deterministic=not train)
        if token_gates is not None:
            return emb, tuple(lookup(g, tokens) for g in token_gates)
        return emb, self.embed_input(emb)

    def token_gates(self) -> Gates:
        """Per gate [tgt_vocab, hidden]: the first layer's input projection of every token's
        embedding, bias included, what :meth:`embed_tokens` computes for one token without dropout."""
        return self.embed_input(self.embed.embedding)

    def step(self, enc: EncoderOutput, state: DecoderState, emb: jax.Array, emb_proj: Gates,
             train: bool = False) -> tuple[jax.Array, DecoderState]:
        """One decoder step from embedded tokens [batch, embed] (and their projection).

        Returns the generator's input [batch, out_dim] and the new state.
        """
        cfg = self.cfg
        deterministic = not train
        x_proj = emb_proj
        context = None
        weights = state.attention
        if cfg.context_every_step:  # one row per sentence, read by each of its rows (beams)
            context = jnp.repeat(enc.context, emb.shape[0] // enc.context.shape[0], axis=0)
        elif is_bahdanau(cfg):
            query = self.cells[-1].output(state.cells[-1])
            context, weights = self.attention(query, enc.keys, enc.memory, enc.mask)
        if enc.context_gates is not None:  # W_ctx c = sum_s a_s (W_ctx m_s), read off the memory's
            x_proj = add_gates(x_proj, tuple(weighted_sum(weights, g) for g in enc.context_gates))
        elif context is not None:
            x_proj = add_gates(x_proj, self.context_input(context))
        if cfg.input_feeding:
            x_proj = add_gates(x_proj, self.feed_input(state.feed.astype(emb.dtype)))
        new_cells = []
        h = None
        for i, cell in enumerate(self.cells):
            if i > 0:
                x_proj = self.layer_inputs[i - 1](self.dropout(h, deterministic=deterministic).astype(emb.dtype))
            carry = cell(state.cells[i], x_proj)
            new_cells.append(carry)
            h = cell.output(carry)
        feed = state.feed
        if cfg.attention != "none" and cfg.attention_style == "luong":
            context, weights = self.attention(h, enc.keys, enc.memory, enc.mask)
            out = jnp.tanh(self.attentional(jnp.concatenate([context, h.astype(context.dtype)], axis=-1)))
            if cfg.input_feeding:
                feed = out.astype(jnp.float32)
        elif context is not None:
            out = jnp.concatenate([h.astype(emb.dtype), context.astype(emb.dtype), emb], axis=-1)
        else:
            out = h
        out = self.dropout(out, deterministic=deterministic)
        return out, DecoderState(cells=tuple(new_cells), feed=feed, attention=weights)

    @property
    def layerwise(self) -> bool:
        """Without attention no step reads another layer's state, so a teacher-forced
        pass can run the layers one after another over all steps (:meth:`forward_layers`)."""
        return self.cfg.attention == "none"

    def forward_layers(self, enc: EncoderOutput, state: DecoderState, emb: jax.Array, emb_proj: Gates,
                       train: bool = False) -> jax.Array:
        """Teacher-forced generator inputs [time, batch, out_dim] of an attention-free decoder, from
        time-major embeddings [time, batch, embed] and their projection: what :meth:`step` gives at
        every step, with each layer's input projection done for all steps in one matmul and its
        recurrence by :func:`run_layer`."""
        cfg = self.cfg
        x_proj = emb_proj
        if cfg.context_every_step:
            ctx = self.context_input(enc.context)
            x_proj = tuple(x + c[None].astype(x.dtype) for x, c in zip(x_proj, ctx, strict=True))
        mask = jnp.ones(emb.shape[:2], bool)
        h = None
        for i, cell in enumerate(self.cells):
            if i > 0:
                x_proj = self.layer_inputs[i - 1](self.dropout(h, deterministic=not train).astype(emb.dtype))
            _, h = run_layer(cell, x_proj, mask, state.cells[i])
        out = h
        if cfg.context_every_step:
            context = jnp.broadcast_to(enc.context[None], emb.shape[:2] + enc.context.shape[-1:])
            out = jnp.concatenate([h.astype(emb.dtype), context.astype(emb.dtype), emb], axis=-1)
        return self.dropout(out, deterministic=not train)

    def generate(self, out: jax.Array, normalize: bool = True, output_rows: jax.Array | None = None) -> jax.Array:
        """Generator input [..., out_dim] -> log-probabilities [..., vocab] (``normalize=False``:
        the logits). ``output_rows``: the vocabulary layer's kernel by rows
        (:func:`~s2s_jax.models.generator.vocabulary_rows`), read in its place."""
        return self.generator(out, normalize=normalize, rows=output_rows)

    def token_losses(self, out: jax.Array, labels: jax.Array,
                     label_smoothing: float = 0.0) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Generator input [..., out_dim] and labels [...] -> per-token (loss, nll, correct) [...]
        (:func:`s2s_jax.models.generator.softmax_cross_entropy`)."""
        return self.generator(out, labels, label_smoothing)

    def context_gates(self, memory: jax.Array) -> tuple[jax.Array, ...]:
        """memory [batch, src_len, enc_dim] -> per gate [batch, src_len, hidden]: the cell input's
        projection of every memory position (Bahdanau arrangement), for ``EncoderOutput.context_gates``."""
        return self.context_input(memory)

    def step_features(self, enc: EncoderOutput, state: DecoderState, tokens: jax.Array, train: bool = False,
                      token_gates: Gates | None = None) -> tuple[jax.Array, DecoderState]:
        """tokens [batch] -> (the generator's input [batch, out_dim], new state)."""
        emb, emb_proj = self.embed_tokens(tokens, train, token_gates)
        return self.step(enc, state, emb, emb_proj, train)

    def step_tokens(self, enc: EncoderOutput, state: DecoderState, tokens: jax.Array, train: bool = False,
                    normalize: bool = True, token_gates: Gates | None = None,
                    output_rows: jax.Array | None = None) -> tuple[jax.Array, DecoderState]:
        """tokens [batch] -> (log-probabilities [batch, vocab] (``normalize=False``: the logits),
        new state)."""
        out, state = self.step_features(enc, state, tokens, train, token_gates)
        return self.generate(out, normalize, output_rows), state


def is_bahdanau(cfg: ModelConfig) -> bool:
    """The attention context joins the cell input (Bahdanau et al. 2015, eq. 4) and the
    generator's input ``[h; c; emb]``."""
    return cfg.attention != "none" and cfg.attention_style == "bahdanau"


def context_columns(cfg: ModelConfig) -> int | None:
    """Where the attention context starts in the generator's input ``[h; c; emb]`` when the
    vocabulary layer reads that input directly (the Bahdanau arrangement, no maxout layer, no tied
    projection), so the logits are linear in the context
    (:class:`~s2s_jax.models.generator.Readout`); None for every other arrangement."""
    linear = is_bahdanau(cfg) and not cfg.maxout_units and not cfg.tie_embeddings
    return cfg.hidden_size if linear else None


def embedding_columns(cfg: ModelConfig) -> int | None:
    """How many columns at the end of the generator's input ``[h; c; emb]`` hold the previous
    token's embedding when the vocabulary layer reads that input directly (the Bahdanau and the
    context-every-step arrangements, no maxout layer, no tied projection), so the logits' share of
    it depends on the token alone (:class:`~s2s_jax.models.generator.Readout`); None otherwise."""
    reads_embedding = is_bahdanau(cfg) or cfg.context_every_step
    linear = reads_embedding and not cfg.maxout_units and not cfg.tie_embeddings
    return cfg.embed_dim if linear else None
