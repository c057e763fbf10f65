"""Model behaviour: padding invariance, source reversal, attention masking,
teacher forcing vs scheduled sampling, the single-step API."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import s2s_jax as s2s
from s2s_jax.errors import ConfigError
from s2s_jax.models import seq2seq
from s2s_jax.models.cells import GATES
from s2s_jax.models.decoder import context_columns, embedding_columns
from s2s_jax.models.encoder import reverse_rows
from s2s_jax.models.seq2seq import TOKEN_TABLES, Seq2Seq, decoding_params, init_decoder
from s2s_jax.training.losses import loss_from_token_terms, sequence_loss
from s2s_jax.vocab import PAD_ID
from tests.conftest import random_batch, tiny_model

# Every cell, direction, attention score and decoder style appears at least once.
VARIANTS = {
    "lstm-2layer-plain": dict(cell="lstm", num_layers=2),
    "gru-bi-additive-bahdanau-maxout": dict(cell="gru", bidirectional=True, attention="additive",
                                            attention_style="bahdanau", maxout_units=6),
    "rnn-bi-general-luong-feed": dict(cell="rnn", bidirectional=True, attention="general", input_feeding=True),
    "lstm-dot-luong": dict(cell="lstm", attention="dot"),
    "gru-context-every-step": dict(cell="gru", context_every_step=True, bridge="linear"),
    "lstm-bi-general-bahdanau-2layer": dict(cell="lstm", bidirectional=True, attention="general",
                                            attention_style="bahdanau", num_layers=2),
    "rnn-additive-luong-zero-bridge": dict(cell="rnn", attention="additive", bridge="zero"),
}


def _init(cfg, batch):
    model = Seq2Seq(cfg)
    params = jax.jit(model.init)(jax.random.key(0), batch["src"], batch["tgt"][:, :-1])["params"]
    return model, params


def _apply(model):
    return jax.jit(lambda p, s, t: model.apply({"params": p}, s, t, mutable=["intermediates"]))


@pytest.mark.parametrize("name", list(VARIANTS))
def test_padding_invariance_and_attention_mask(name):
    cfg = tiny_model(**VARIANTS[name])
    b = random_batch(3, 7, 6, seed=1)
    model, params = _init(cfg, b)
    apply = _apply(model)
    full, inter = apply(params, b["src"], b["tgt"][:, :-1])
    for row in (1, 2):  # rows shorter than the batch's padded lengths
        n_src = int(np.sum(b["src"][row] != PAD_ID))
        n_tgt = int(np.sum(b["tgt"][row] != PAD_ID)) - 1
        alone, _ = apply(params, b["src"][row:row + 1, :n_src], b["tgt"][row:row + 1, :n_tgt])
        np.testing.assert_allclose(full[row, :n_tgt], alone[0], atol=2e-5, rtol=1e-5)
    weights = np.asarray(inter["intermediates"]["attention"][0])
    if cfg.attention == "none":
        assert weights.shape[-1] == 0
    else:
        mask = b["src"] != PAD_ID
        np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
        assert np.all(weights[np.broadcast_to(~mask[:, None, :], weights.shape)] == 0.0)


@pytest.mark.parametrize("extra", [dict(), dict(bidirectional=True, attention="additive")])
def test_reverse_source_equals_manually_reversed_rows(extra):
    b = random_batch(3, 7, 5, seed=2)
    forward = tiny_model(**extra)
    backward = tiny_model(reverse_source=True, **extra)
    model_f, params = _init(forward, b)
    src_rev = np.asarray(reverse_rows(jnp.asarray(b["src"]), jnp.sum(b["src"] != PAD_ID, axis=1)))
    assert not np.array_equal(src_rev, b["src"]) and np.array_equal(src_rev[1][::-1][-1], b["src"][1][0])
    out_f, _ = _apply(model_f)(params, src_rev, b["tgt"][:, :-1])
    out_r, _ = _apply(Seq2Seq(backward))(params, b["src"], b["tgt"][:, :-1])
    np.testing.assert_allclose(out_f, out_r, atol=1e-5)


def test_reverse_rows_keeps_padding_and_is_an_involution():
    x = jnp.array([[5, 6, 7, 0], [8, 9, 0, 0]])
    lengths = jnp.array([3, 2])
    np.testing.assert_array_equal(reverse_rows(x, lengths), [[7, 6, 5, 0], [9, 8, 0, 0]])
    np.testing.assert_array_equal(reverse_rows(reverse_rows(x, lengths), lengths), x)


@pytest.fixture(scope="module")
def attention_model():
    cfg = tiny_model(cell="gru", attention="general", input_feeding=True, dropout=0.2)
    b = random_batch(4, 6, 6, seed=3)
    model, params = _init(cfg, b)
    return model, params, b


def test_teacher_forcing_prob_one_equals_teacher_forcing(attention_model):
    model, params, b = attention_model
    tf = model.apply({"params": params}, b["src"], b["tgt"][:, :-1])
    ss = jax.jit(lambda p, k: model.apply({"params": p}, b["src"], b["tgt"][:, :-1],
                                          teacher_forcing_prob=jnp.float32(1.0),
                                          rngs={"sampling": k}))(params, jax.random.key(5))
    np.testing.assert_allclose(tf, ss, atol=1e-5)


def test_scheduled_sampling_is_deterministic_by_key(attention_model):
    model, params, b = attention_model
    run = jax.jit(lambda p, k: model.apply({"params": p}, b["src"], b["tgt"][:, :-1], train=True,
                                           teacher_forcing_prob=jnp.float32(0.5), sampling_mode="sample",
                                           rngs={"sampling": k, "dropout": jax.random.key(9)}))
    a, a2, c = run(params, jax.random.key(1)), run(params, jax.random.key(1)), run(params, jax.random.key(2))
    np.testing.assert_array_equal(a, a2)
    assert not np.allclose(a, c)


def test_zero_teacher_forcing_feeds_the_models_own_argmax(attention_model):
    """With eps = 0 every input after BOS is the model's previous argmax: the same
    as running the single-step API on its own predictions."""
    model, params, b = attention_model
    ss = model.apply({"params": params}, b["src"], b["tgt"][:, :-1], teacher_forcing_prob=0.0,
                     rngs={"sampling": jax.random.key(0)})
    state, step, _ = init_decoder(model, params, b["src"])
    tokens = b["tgt"][:, 0]
    for t in range(b["tgt"].shape[1] - 1):
        log_probs, state = step(state, tokens)
        np.testing.assert_allclose(ss[:, t], log_probs, atol=1e-5)
        tokens = jnp.argmax(log_probs, -1)


def test_single_step_api_equals_training_forward(attention_model):
    model, params, b = attention_model
    full = model.apply({"params": params}, b["src"], b["tgt"][:, :-1])
    state, step, _ = init_decoder(model, params, b["src"])
    for t in range(b["tgt"].shape[1] - 1):
        log_probs, state = step(state, b["tgt"][:, t])
        np.testing.assert_allclose(full[:, t], log_probs, atol=1e-5)


@pytest.mark.parametrize("name", ["lstm-2layer-plain", "gru-bi-additive-bahdanau-maxout", "tied"])
def test_unnormalised_step_gives_the_logits_of_the_log_probs(name):
    """``normalize=False`` skips only the log-softmax: same argmax, and log_softmax of it is the
    normalised step, state for state."""
    cfg = tiny_model(tie_embeddings=True, attention="dot") if name == "tied" else tiny_model(**VARIANTS[name])
    b = random_batch(3, 6, 5, seed=2)
    model, params = _init(cfg, b)
    state, step, _ = init_decoder(model, params, b["src"])
    raw_state, raw_step, _ = init_decoder(model, params, b["src"], normalize=False)
    for t in range(b["tgt"].shape[1] - 1):
        log_probs, state = step(state, b["tgt"][:, t])
        logits, raw_state = raw_step(raw_state, b["tgt"][:, t])
        assert not np.allclose(jax.nn.logsumexp(logits, axis=-1), 0.0, atol=1e-3)
        np.testing.assert_allclose(jax.nn.log_softmax(logits, axis=-1), log_probs, atol=1e-5)
        np.testing.assert_array_equal(np.argmax(logits, -1), np.argmax(log_probs, -1))
        jax.tree_util.tree_map(np.testing.assert_array_equal, raw_state, state)


def test_context_columns_only_where_the_logits_are_linear_in_the_context():
    bahdanau = VARIANTS["lstm-bi-general-bahdanau-2layer"]
    assert context_columns(tiny_model(**bahdanau)) == 16
    assert context_columns(tiny_model(**bahdanau, tie_embeddings=True)) is None
    for name in ("gru-bi-additive-bahdanau-maxout", "rnn-bi-general-luong-feed", "gru-context-every-step",
                 "lstm-2layer-plain"):
        assert context_columns(tiny_model(**VARIANTS[name])) is None


@pytest.mark.parametrize("name", ["lstm-bi-general-bahdanau-2layer", "gru-bi-additive-bahdanau-maxout"])
@pytest.mark.parametrize("dtype,atol", [("float32", 1e-5), ("bfloat16", 2e-2)])
def test_beams_read_their_context_products_off_the_memory(name, dtype, atol):
    """With rows repeated per sentence (beams), a Bahdanau decoder takes its cell input's product
    with the attention context from the memory's (EncoderOutput.context_gates), and, without a maxout
    layer, the context's share of the logits too (Readout): the same logits, step after step,
    as the direct products on a batch that repeats the sentences. In bfloat16 the two round
    different operands (the context, or each memory position)."""
    cfg = tiny_model(**VARIANTS[name], dtype=dtype)
    b = random_batch(3, 6, 5, seed=4)
    model, params = _init(cfg, b)
    k = 3
    state, step, enc = init_decoder(model, params, b["src"], repeat=k, normalize=False)
    assert [g.shape for g in enc.context_gates] == [(3, 6, 16)] * len(enc.context_gates)
    ref_state, ref_step, ref_enc = init_decoder(model, params, np.repeat(b["src"], k, axis=0), normalize=False)
    assert ref_enc.context_gates is None
    log_state, log_step, _ = init_decoder(model, params, b["src"], repeat=k)
    long_src = np.tile(b["src"], (1, 5))  # 30 > 8 * k rows per sentence: the direct products
    assert init_decoder(model, params, long_src, repeat=k)[2].context_gates is None
    tokens = np.repeat(b["tgt"][:, 0], k)
    for _ in range(4):
        logits, state = step(state, tokens)
        ref, ref_state = ref_step(ref_state, tokens)
        log_probs, log_state = log_step(log_state, tokens)
        assert float(jnp.max(jnp.abs(ref))) > 0.1
        np.testing.assert_allclose(logits, ref, atol=atol)
        np.testing.assert_allclose(log_probs, jax.nn.log_softmax(logits, axis=-1), atol=1e-5)
        tokens = np.asarray(jnp.argmax(ref, -1))


def test_tied_embeddings_share_the_target_embedding():
    cfg = tiny_model(tie_embeddings=True, attention="dot")
    b = random_batch(2, 5, 4)
    model, params = _init(cfg, b)
    gen = params["decoder"]["generator"]
    assert "output" not in gen and "bias" in gen
    perturbed = jax.tree_util.tree_map(lambda x: x, params)
    perturbed["decoder"]["embed"]["embedding"] = params["decoder"]["embed"]["embedding"] * 2.0
    a = model.apply({"params": params}, b["src"], b["tgt"][:, :-1])
    c = model.apply({"params": perturbed}, b["src"], b["tgt"][:, :-1])
    assert not np.allclose(a, c)


@pytest.mark.parametrize("name", [*VARIANTS, "tied"])
def test_token_losses_are_the_log_probs_loss(name):
    """The training path (per-token losses straight from the logits) gives the loss, the
    statistics and the gradients of ``sequence_loss`` over ``__call__``'s log-probabilities."""
    cfg = tiny_model(tie_embeddings=True, attention="dot") if name == "tied" else tiny_model(**VARIANTS[name])
    b = random_batch(3, 6, 5, seed=4)
    model, params = _init(cfg, b)
    labels = b["tgt"][:, 1:]

    def fused(p):
        terms = model.apply({"params": p}, b["src"], b["tgt"][:, :-1], labels, label_smoothing=0.1,
                            method=Seq2Seq.token_losses)
        return loss_from_token_terms(*terms, labels)

    def reference(p):
        return sequence_loss(model.apply({"params": p}, b["src"], b["tgt"][:, :-1]), labels, 0.1)

    (loss, stats), grads = jax.jit(jax.value_and_grad(fused, has_aux=True))(params)
    (ref, ref_stats), ref_grads = jax.jit(jax.value_and_grad(reference, has_aux=True))(params)
    np.testing.assert_allclose(loss, ref, rtol=1e-5)
    for k in ("nll_sum", "tokens", "correct"):
        np.testing.assert_allclose(stats[k], ref_stats[k], rtol=1e-5)
    jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-5, rtol=1e-4), grads, ref_grads)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_bfloat16_matches_float32_within_its_rounding(name):
    """bfloat16 matmuls (inputs rounded to 8 bits of mantissa, float32 accumulation) give the
    float32 model's log-probabilities to within 0.05 and its gradients to within 5% of their norm,
    from the same float32 parameters; the outputs and gradients stay float32."""
    b = random_batch(3, 6, 5, seed=2)
    model, params = _init(tiny_model(**VARIANTS[name]), b)
    bf16 = Seq2Seq(dataclasses.replace(model.cfg, dtype="bfloat16"))

    def loss_and_grads(m):
        def loss(p):
            out = m.apply({"params": p}, b["src"], b["tgt"][:, :-1])
            return jnp.sum(out * jax.nn.one_hot(b["tgt"][:, 1:], out.shape[-1])), out
        return jax.jit(jax.value_and_grad(loss, has_aux=True))(params)

    (_, ref), ref_grads = loss_and_grads(model)
    (_, out), grads = loss_and_grads(bf16)
    assert out.dtype == jnp.float32
    assert all(g.dtype == jnp.float32 for g in jax.tree_util.tree_leaves(grads))
    err = np.abs(np.asarray(out) - np.asarray(ref)).max()
    assert 1e-4 < err < 0.05  # above zero: the products really were rounded
    flat = lambda t: np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(t)])
    g, r = flat(grads), flat(ref_grads)
    assert np.linalg.norm(g - r) < 0.05 * np.linalg.norm(r)


@pytest.mark.parametrize("name", ["gru-bi-additive-bahdanau-maxout", "rnn-bi-general-luong-feed",
                                  "gru-context-every-step", "lstm-bi-general-bahdanau-2layer", "tied"])
def test_decoding_params_give_the_same_log_probs_bit_for_bit(name):
    """Matmul weights rounded to bfloat16 ahead of time change no output: every kernel but the
    additive attention's float32 ``v`` is cast, and a float32 model's parameters are kept.
    Every cell, attention score, bridge, maxout and the tied generator appear."""
    cfg = tiny_model(tie_embeddings=True, attention="dot") if name == "tied" else tiny_model(**VARIANTS[name])
    b = random_batch(3, 6, 5, seed=2)
    model, params = _init(cfg, b)
    bf16_model = Seq2Seq(dataclasses.replace(cfg, dtype="bfloat16"))
    ready = decoding_params(bf16_model, params)
    cast = {k: v for k, v in ready.items() if k != TOKEN_TABLES}
    assert cast.keys() == params.keys()
    for path, x in jax.tree_util.tree_leaves_with_path(cast):
        names = [p.key for p in path]
        weight = names[-1] == "kernel" and names[-2] != "energy"
        assert x.dtype == (jnp.bfloat16 if weight else jnp.float32), names
    kept = decoding_params(model, params)
    assert all(kept[k] is params[k] for k in params)
    forward = jax.jit(lambda p, q: [bf16_model.apply({"params": v}, b["src"], b["tgt"][:, :-1]) for v in (p, q)])
    want, got = forward(params, ready)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name,dtype,atol", [(n, "bfloat16", 1e-4) for n in [*VARIANTS, "tied", "reversed"]]
                         + [("lstm-bi-general-bahdanau-2layer", "float32", 1e-5)])
def test_token_tables_give_the_steps_logits(name, dtype, atol):
    """decoding_params' per-token tables (the encoder's and the decoder's first-layer input
    projections of every token, and the embedding's share of the logits where the vocabulary layer
    reads the embedding) give the logits and states the computed products give, step after step,
    with one row per sentence and with beams. Both round the same operands, so bfloat16 agrees to
    float32 summation order."""
    special = {"tied": dict(tie_embeddings=True, attention="dot"),
               "reversed": dict(VARIANTS["gru-bi-additive-bahdanau-maxout"], maxout_units=0, reverse_source=True)}
    cfg = dataclasses.replace(tiny_model(**special.get(name, VARIANTS.get(name))), dtype=dtype)
    b = random_batch(3, 6, 5, seed=5)
    assert (b["src"] == PAD_ID).any()  # rows of several lengths
    model, params = _init(cfg, b)
    ready = decoding_params(model, params)
    tables = ready[TOKEN_TABLES]
    assert [g.shape for g in tables["gates"]] == [(cfg.tgt_vocab_size, cfg.hidden_size)] * len(GATES[cfg.cell])
    directions = ["fwd", "bwd"] if cfg.bidirectional else ["fwd"]
    assert {d: [g.shape for g in gates] for d, gates in tables["source_gates"].items()} == {
        d: [(cfg.src_vocab_size, cfg.hidden_size)] * len(GATES[cfg.cell]) for d in directions}
    assert ("logits" in tables) == ("readout_kernel" in tables) == (embedding_columns(cfg) is not None)
    assert ("output_rows" in tables) == (not cfg.tie_embeddings)
    plain = {k: v for k, v in ready.items() if k != TOKEN_TABLES}
    for repeat in (1, 2):
        state, step, _ = init_decoder(model, ready, b["src"], repeat=repeat, normalize=False)
        ref_state, ref_step, _ = init_decoder(model, plain, b["src"], repeat=repeat, normalize=False)
        tokens = np.repeat(b["tgt"][:, 0], repeat)
        for _ in range(4):
            logits, state = step(state, tokens)
            ref, ref_state = ref_step(ref_state, tokens)
            assert float(jnp.max(jnp.abs(ref))) > 0.01
            np.testing.assert_allclose(logits, ref, atol=atol)
            jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, atol=atol), state, ref_state)
            tokens = np.asarray(jnp.argmax(ref, -1))


def _dot_generals(jaxpr):
    """Every dot_general of a jaxpr, those of its inner jaxprs (jit, custom_vjp) included."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            yield eqn
        for value in eqn.params.values():
            for inner in value if isinstance(value, (list, tuple)) else [value]:
                inner = getattr(inner, "jaxpr", inner)
                if hasattr(inner, "eqns"):
                    yield from _dot_generals(inner)


def test_a_decoding_step_reads_the_vocabulary_kernel_by_rows():
    """With decoding_params, a bfloat16 step's vocabulary product reads ``output_rows`` [vocab, dim],
    contracted over its minor dimension (the layout a step runs faster in); without them, the
    stored [dim, vocab] kernel. (A float32 product states the transpose in its jaxpr, for XLA to fold.)"""
    cfg = dataclasses.replace(tiny_model(cell="lstm"), dtype="bfloat16")
    b = random_batch(3, 6, 5)
    model, params = _init(cfg, b)

    def vocabulary_products(p):
        state, step, _ = init_decoder(model, p, b["src"], normalize=False)
        jaxpr = jax.make_jaxpr(step)(state, b["tgt"][:, 0]).jaxpr
        return [(tuple(e.invars[1].aval.shape), e.params["dimension_numbers"][0][1])
                for e in _dot_generals(jaxpr) if e.outvars[0].aval.shape[-1] == cfg.tgt_vocab_size]

    ready = decoding_params(model, params)
    assert ready[TOKEN_TABLES]["output_rows"].shape == (cfg.tgt_vocab_size, cfg.hidden_size)
    assert vocabulary_products(ready) == [((cfg.tgt_vocab_size, cfg.hidden_size), (1,))]
    assert vocabulary_products(params) == [((cfg.hidden_size, cfg.tgt_vocab_size), (0,))]


def test_the_token_logits_table_has_a_size_limit(monkeypatch):
    """A vocabulary whose [vocab, vocab] float32 table would pass TOKEN_LOGITS_MAX_BYTES gets the
    gates' table only; decoding then computes the embedding's share of the logits."""
    cfg = tiny_model(**VARIANTS["lstm-bi-general-bahdanau-2layer"])
    b = random_batch(3, 6, 5)
    model, params = _init(cfg, b)
    assert "logits" in decoding_params(model, params)[TOKEN_TABLES]
    monkeypatch.setattr(seq2seq, "TOKEN_LOGITS_MAX_BYTES", 4 * cfg.tgt_vocab_size ** 2 - 1)
    seq2seq._token_tables.clear_cache()  # the limit is read when the tables' function is traced
    try:
        assert set(decoding_params(model, params)[TOKEN_TABLES]) == {"gates", "source_gates", "output_rows"}
    finally:
        seq2seq._token_tables.clear_cache()


def test_forget_bias_equals_shifting_every_lstm_forget_gate_bias():
    cfg = tiny_model(cell="lstm", num_layers=2, bidirectional=True, attention="general", input_feeding=True)
    b = random_batch(3, 6, 5)
    model, params = _init(cfg, b)

    def is_cell_bias(path, x):  # RecurrentCell's [gates, hidden]; every other bias is 1-D
        return path[-1].key == "bias" and x.ndim == 2

    assert sum(is_cell_bias(p, x) for p, x in jax.tree_util.tree_leaves_with_path(params)) == 6  # 4 encoder, 2 decoder
    shifted = jax.tree_util.tree_map_with_path(lambda p, x: x.at[1].add(1.5) if is_cell_bias(p, x) else x, params)

    def loss_and_grads(m, p):
        return jax.jit(jax.value_and_grad(lambda q: m.apply({"params": q}, b["src"], b["tgt"][:, :-1]).sum()))(p)

    got = loss_and_grads(Seq2Seq(dataclasses.replace(cfg, forget_bias=1.5)), params)
    want = loss_and_grads(model, shifted)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-5), got[1], want[1])
    assert abs(got[0] - loss_and_grads(model, params)[0]) > 1e-2  # float32 noise here is ~1e-4


def test_an_unset_vocabulary_size_is_refused_in_one_sentence():
    with pytest.raises(ConfigError, match=r"^model\.src_vocab_size is 0, which means: take it from the tokenizer; "
                                          r"build the model from the config that s2s\.load_data\(cfg\) returns"):
        s2s.Seq2Seq(s2s.get_preset("dates").model)
