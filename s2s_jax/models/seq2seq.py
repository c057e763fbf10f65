"""The encoder-decoder model and its single-step decoding API.

``Seq2Seq.__call__`` is the training forward pass over a whole target;
``encode`` / ``initial_state`` / ``step`` advance one token at a time for
decoding. Both run :meth:`Decoder.step`, so they cannot disagree.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from s2s_jax.config import ModelConfig
from s2s_jax.errors import ConfigError
from s2s_jax.models.bridge import Bridge
from s2s_jax.models.cells import Gates
from s2s_jax.models.decoder import Decoder, DecoderState, context_columns, embedding_columns, is_bahdanau
from s2s_jax.models.encoder import Encoder, EncoderOutput, context_vector, source_token_gates
from s2s_jax.models.generator import Readout, log_softmax, readout_kernel, token_logits, vocabulary_rows
from s2s_jax.models.scheduled_sampling import choose_inputs
from s2s_jax.precision import compute_dtype

_SCAN = dict(variable_broadcast="params", split_rngs={"params": False, "dropout": True, "sampling": True},
             in_axes=(nn.broadcast, 1), out_axes=1)
_SCAN_TIME_MAJOR = _SCAN | dict(in_axes=(nn.broadcast, 0), out_axes=0)


def _is_teacher_forcing(prob: float | jax.Array) -> bool:
    return isinstance(prob, (int, float)) and prob >= 1.0


class Seq2Seq(nn.Module):
    cfg: ModelConfig

    def __post_init__(self):
        for name in ("src_vocab_size", "tgt_vocab_size"):
            if getattr(self.cfg, name) == 0:
                raise ConfigError(f"model.{name} is 0, which means: take it from the tokenizer; build the model "
                                  "from the config that s2s.load_data(cfg) returns (data.config.model), or set it.")
        super().__post_init__()

    def setup(self):
        self.encoder = Encoder(self.cfg)
        self.bridge = Bridge(self.cfg)
        self.decoder = Decoder(self.cfg)

    def encode(self, src: jax.Array, train: bool = False,
               token_gates: dict[str, Gates] | None = None) -> EncoderOutput:
        """src [batch, src_len] -> the encoder output, attention keys included. ``token_gates``:
        :func:`~s2s_jax.models.encoder.source_token_gates`, looked up rather than computed."""
        memory, mask, final = self.encoder(src, train=train, token_gates=token_gates)
        return EncoderOutput(memory=memory, keys=self.decoder.attention_keys(memory), mask=mask,
                             final=final, context=context_vector(self.cfg, final))

    def initial_state(self, enc: EncoderOutput) -> DecoderState:
        return self.decoder.initial_state(self.bridge(enc.final), enc.memory.shape[1])

    def step(self, enc: EncoderOutput, state: DecoderState, tokens: jax.Array, train: bool = False,
             normalize: bool = True, token_gates: Gates | None = None,
             output_rows: jax.Array | None = None) -> tuple[jax.Array, DecoderState]:
        """tokens [batch] -> (log-probabilities [batch, vocab], new state). ``normalize=False``
        gives the logits instead: what an argmax or a sample needs, without the log-softmax's
        pass over the vocabulary. ``token_gates``: :meth:`token_gates`, looked up rather than computed;
        ``output_rows``: the vocabulary layer's kernel by rows
        (:func:`~s2s_jax.models.generator.vocabulary_rows`), read in its place."""
        return self.decoder.step_tokens(enc, state, tokens, train, normalize, token_gates, output_rows)

    def token_gates(self) -> Gates:
        """Per gate [tgt_vocab, hidden]: every target token's first-layer input projection."""
        return self.decoder.token_gates()

    def context_gates(self, memory: jax.Array) -> tuple[jax.Array, ...]:
        """memory [batch, src_len, enc_dim] -> the decoder's ``EncoderOutput.context_gates``."""
        return self.decoder.context_gates(memory)

    def step_features(self, enc: EncoderOutput, state: DecoderState, tokens: jax.Array,
                      token_gates: Gates | None = None) -> tuple[jax.Array, DecoderState]:
        """tokens [batch] -> (the generator's input [batch, out_dim], new state): :meth:`step`
        without the generator."""
        return self.decoder.step_features(enc, state, tokens, token_gates=token_gates)

    def teacher_forced(self, src: jax.Array, tgt_in: jax.Array, train: bool = False) -> jax.Array:
        """The generator inputs [batch, tgt_len, out_dim] of every step, fed the gold tokens;
        attention weights [batch, tgt_len, src_len] are sown as ``intermediates/attention``."""
        return jnp.swapaxes(self.teacher_forced_time_major(src, tgt_in, train), 0, 1)

    def teacher_forced_time_major(self, src: jax.Array, tgt_in: jax.Array, train: bool = False) -> jax.Array:
        """:meth:`teacher_forced`, time-major: [tgt_len, batch, out_dim]. The decoder runs time-major
        from the token ids on, so no step's inputs or outputs are transposed."""
        enc = self.encode(src, train)
        state = self.initial_state(enc)
        emb, emb_proj = self.decoder.embed_tokens(tgt_in.T, train)
        if self.decoder.layerwise:
            outs = self.decoder.forward_layers(enc, state, emb, emb_proj, train)
            attention = jnp.zeros((*tgt_in.shape, 0), jnp.float32)
        else:
            def body(dec: Decoder, carry: DecoderState, enc: EncoderOutput, xs: tuple[jax.Array, jax.Array]):
                out, carry = dec.step(enc, carry, *xs, train=train)
                return carry, (out, carry.attention)

            body = nn.remat(body) if self.cfg.remat else body
            _, (outs, attention) = nn.scan(body, **_SCAN_TIME_MAJOR)(self.decoder, state, enc, (emb, emb_proj))
            attention = jnp.swapaxes(attention, 0, 1)
        self.sow("intermediates", "attention", attention)
        return outs

    def token_losses(self, src: jax.Array, tgt_in: jax.Array, labels: jax.Array, train: bool = False,
                     label_smoothing: float = 0.0) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Teacher-forced per-token (loss, nll, correct) [batch, tgt_len] for ``labels``
        [batch, tgt_len], straight from the logits: the log-probabilities :meth:`__call__`
        gives, without materialising them (:meth:`Decoder.token_losses`)."""
        outs = self.teacher_forced_time_major(src, tgt_in, train)
        terms = self.decoder.token_losses(outs, labels.T, label_smoothing)
        return tuple(t.T for t in terms)

    def __call__(self, src: jax.Array, tgt_in: jax.Array, train: bool = False,
                 teacher_forcing_prob: float | jax.Array = 1.0, sampling_mode: str = "argmax") -> jax.Array:
        """src [batch, src_len], tgt_in [batch, tgt_len] -> log-probabilities [batch, tgt_len, vocab].

        With ``teacher_forcing_prob`` < 1 (or a traced value), scheduled sampling:
        each step feeds the gold token with that probability, else the model's own
        previous prediction, using the ``sampling`` rng stream. Attention weights
        [batch, tgt_len, src_len] are sown as ``intermediates/attention``.
        """
        if _is_teacher_forcing(teacher_forcing_prob):
            # The embedding projection and the generator run on all steps at once.
            return self.decoder.generate(self.teacher_forced(src, tgt_in, train))
        enc = self.encode(src, train)
        state = self.initial_state(enc)
        prob = jnp.asarray(teacher_forcing_prob, jnp.float32)
        steps = jnp.broadcast_to(jnp.arange(tgt_in.shape[1]), tgt_in.shape)
        prev = jnp.zeros((tgt_in.shape[0], self.cfg.tgt_vocab_size), jnp.float32)

        def body(dec: Decoder, carry: tuple[DecoderState, jax.Array], enc: EncoderOutput,
                 xs: tuple[jax.Array, jax.Array]):
            state, prev = carry
            gold, t = xs
            chosen = choose_inputs(dec.make_rng("sampling"), gold, prev, prob, sampling_mode)
            tokens = jnp.where(t == 0, gold, chosen)  # the first input is always BOS
            log_probs, state = dec.step_tokens(enc, state, tokens, train)
            return (state, log_probs), (log_probs, state.attention)

        body = nn.remat(body) if self.cfg.remat else body
        _, (log_probs, attention) = nn.scan(body, **_SCAN)(self.decoder, (state, prev), enc, (tgt_in, steps))
        self.sow("intermediates", "attention", attention)
        return log_probs


StepFn = Callable[[DecoderState, jax.Array], tuple[jax.Array, DecoderState]]

# The memory's products (init_decoder) hold src_len rows per sentence where a step's logits hold
# ``repeat``; taking them only up to this many times the step's rows bounds their memory to that
# multiple of the step's logits. Their gain was measured at src_len 24 and repeat 5, not at the
# bound (BENCHMARKS.md, "The context's logits from the memory").
MEMORY_ROWS_PER_REPEAT = 8


# The key of decoding_params' per-token tables, beside the modules' parameters (which Flax
# leaves alone: no module reads it).
TOKEN_TABLES = "token_tables"
# The largest [tgt_vocab, vocab] float32 table of the embedding's share of the logits that
# decoding_params makes: 256 MiB, a vocabulary of 8192.
TOKEN_LOGITS_MAX_BYTES = 1 << 28


def decoding_params(model: Seq2Seq, params):
    """``params`` made ready for decoding batch after batch (the Translator, evaluation); not for
    training, whose gradients and updates are float32.

    - The matrix-product weights are already in the model's compute dtype: every decoding call
      would otherwise round all the float32 weights to bfloat16 again (BENCHMARKS.md, "Weights
      rounded once"). That changes no output, since the products round the weights to that dtype
      anyway. The weights are the leaves named ``kernel``, except the additive attention's vector
      ``v`` (:class:`~s2s_jax.models.attention.AdditiveEnergy`, module ``energy``), whose score is
      computed in float32.
    - Under ``TOKEN_TABLES``, what decoding computes from a single token, for every token
      (BENCHMARKS.md, "Per-token tables"): ``source_gates``, the encoder's first-layer input
      projections (:func:`~s2s_jax.models.encoder.source_token_gates`); ``gates``, the decoder's
      (:meth:`Seq2Seq.token_gates`); ``output_rows``, the vocabulary layer's kernel by rows
      (:func:`~s2s_jax.models.generator.vocabulary_rows`; not for a generator tied to the
      embedding, which is by rows already); and, where the vocabulary layer reads the
      embedding directly (:func:`~s2s_jax.models.decoder.embedding_columns`) and the table fits
      ``TOKEN_LOGITS_MAX_BYTES``, ``logits``, the embedding's share of the logits
      (:func:`~s2s_jax.models.generator.token_logits`), with ``readout_kernel``, the vocabulary
      layer's other columns (:func:`~s2s_jax.models.generator.readout_kernel`).
      :func:`init_decoder` looks them up; the outputs equal the computed ones to rounding. Memory
      for speed: the benchmarks' ``attention`` shape (vocabularies of 8000) holds about 430 MB of
      tables, 256 MB of them the logits'.
    """
    dtype = compute_dtype(model.cfg.dtype)

    def cast(path, x: jax.Array) -> jax.Array:
        names = [getattr(entry, "key", None) for entry in path]
        is_weight = names[-1] == "kernel" and names[-2:-1] != ["energy"]
        return x.astype(dtype) if is_weight else x

    ready = params if dtype == jnp.float32 else jax.tree_util.tree_map_with_path(cast, params)
    return {**ready, TOKEN_TABLES: _token_tables(model, ready)}


@functools.partial(jax.jit, static_argnums=0)
def _token_tables(model: Seq2Seq, params) -> dict:
    tables = {"gates": model.apply({"params": params}, method=Seq2Seq.token_gates),
              "source_gates": source_token_gates(model.cfg, params["encoder"])}
    if model.cfg.tie_embeddings:  # the embedding is by rows already
        return tables
    dtype = compute_dtype(model.cfg.dtype)
    rows = tables["output_rows"] = vocabulary_rows(params["decoder"]["generator"]["output"]["kernel"], dtype)
    columns = embedding_columns(model.cfg)
    if columns is not None and 4 * model.cfg.tgt_vocab_size ** 2 <= TOKEN_LOGITS_MAX_BYTES:
        tables["logits"] = token_logits(params["decoder"]["embed"]["embedding"], rows, columns, dtype)
        tables["readout_kernel"] = readout_kernel(rows, columns, dtype)
    return tables


def init_decoder(model: Seq2Seq, params, src: jax.Array, repeat: int = 1,
                 normalize: bool = True) -> tuple[DecoderState, StepFn, EncoderOutput]:
    """Run the encoder once and return ``(state, step, enc)`` with the pure
    ``step(state, tokens [batch]) -> (log_probs [batch, vocab], state)`` (``normalize=False``:
    the logits instead of the log-probabilities).

    ``repeat`` > 1 repeats every sentence's decoder state that many times along the batch (the
    beams of beam search). The encoder output stays one row per sentence, which ``step`` reads
    for each group of rows, whatever their number: the attention its memory, attention keys and
    mask (:class:`~s2s_jax.models.attention.Attention`), the context-every-step decoder its
    context vector. A Bahdanau decoder's cell input and logits are linear in its attention context
    ``c = sum_s a_s m_s``, so their products with it are then read off the memory's, computed once
    per sentence rather than once per row: the cell input's (``EncoderOutput.context_gates``)
    and, where the vocabulary layer reads ``c`` directly (:func:`~s2s_jax.models.decoder.context_columns`),
    the logits' (:class:`~s2s_jax.models.generator.Readout`). That holds up to src_len =
    ``MEMORY_ROWS_PER_REPEAT * repeat``; longer sources take the direct products.

    ``params`` from :func:`decoding_params` bring per-token tables, which the step looks up.
    """
    tables = params.get(TOKEN_TABLES, {})
    variables = {"params": params}
    enc = model.apply(variables, src, token_gates=tables.get("source_gates"), method=Seq2Seq.encode)
    state = model.apply(variables, enc, method=Seq2Seq.initial_state)
    if repeat > 1:
        state = jax.tree_util.tree_map(lambda x: jnp.repeat(x, repeat, axis=0), state)
    reads_memory = repeat > 1 and is_bahdanau(model.cfg) and src.shape[1] <= MEMORY_ROWS_PER_REPEAT * repeat
    if reads_memory:
        enc = enc.replace(context_gates=model.apply(variables, enc.memory, method=Seq2Seq.context_gates))
    start = context_columns(model.cfg)
    memory = enc.memory if reads_memory and start is not None else None
    readout = None
    if memory is not None or "logits" in tables:
        output, dtype = params["decoder"]["generator"]["output"], compute_dtype(model.cfg.dtype)
        kernel = tables.get("readout_kernel", tables.get("output_rows"))
        kernel = vocabulary_rows(output["kernel"], dtype) if kernel is None else kernel
        readout = Readout.of(kernel, output["bias"], dtype, memory=memory, context_start=start or 0,
                             token_terms=tables.get("logits"))
    gates, rows = tables.get("gates"), tables.get("output_rows")

    def step(state: DecoderState, tokens: jax.Array) -> tuple[jax.Array, DecoderState]:
        if readout is None:
            return model.apply(variables, enc, state, tokens, normalize=normalize, token_gates=gates,
                               output_rows=rows, method=Seq2Seq.step)
        features, state = model.apply(variables, enc, state, tokens, token_gates=gates,
                                      method=Seq2Seq.step_features)
        logits = readout.logits(features, state.attention, tokens)
        return (log_softmax(logits) if normalize else logits), state

    return state, step, enc
