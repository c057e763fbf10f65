"""Greedy decoding: the argmax token at every step, in one ``lax.while_loop``."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from s2s_jax.decoding.common import constrain_eos, decode_jit, output_limits
from s2s_jax.decoding.selection import first_argmax
from s2s_jax.models.seq2seq import Seq2Seq, init_decoder
from s2s_jax.vocab import BOS_ID, EOS_ID, PAD_ID

Chooser = Callable[[jax.Array, jax.Array], jax.Array]


@decode_jit(static_argnames=("model", "max_len", "max_len_a", "min_len", "return_attention"))
def greedy_decode(model: Seq2Seq, params, src: jax.Array, max_len: int = 50, *, max_len_a: float = 0.0,
                  min_len: int = 0, return_attention: bool = False):
    """src [batch, src_len] -> tokens [batch, width]: each row its argmax tokens, EOS, then PAD.

    Stops when every row has emitted EOS. With ``return_attention`` also returns the
    attention weights [batch, width, src_len] (zero after EOS and for models without attention).
    """
    return decode_token_by_token(model, params, src, lambda logits, t: first_argmax(logits),
                                 max_len, max_len_a, min_len, return_attention)


def decode_token_by_token(model: Seq2Seq, params, src: jax.Array, choose: Chooser, max_len: int, max_len_a: float,
                          min_len: int, return_attention: bool):
    """The loop of greedy decoding and sampling: ``choose(logits [batch, vocab], t) -> tokens [batch]``
    picks each row's next token from the EOS-constrained logits at output position ``t``. Neither
    an argmax nor a sample needs them normalised, so the log-softmax is not computed.
    Returns tokens [batch, width] (and attention [batch, width, src_len] with ``return_attention``)."""
    state, step, _ = init_decoder(model, params, src, normalize=False)
    batch, src_len = src.shape
    width, limits = output_limits(src, max_len, max_len_a)
    tokens = jnp.full((batch, width), PAD_ID, jnp.int32)
    attention = jnp.zeros((batch, width, src_len if model.cfg.attention != "none" else 0), jnp.float32)
    done = jnp.zeros((batch,), bool)
    prev = jnp.full((batch,), BOS_ID, jnp.int32)

    def cond(carry):
        t, _, _, _, _, done = carry
        return (t < width) & ~jnp.all(done)

    def body(carry):
        t, prev, state, tokens, attention, done = carry
        logits, state = step(state, prev)
        logits = constrain_eos(logits, t, limits, min_len)
        nxt = jnp.where(done, PAD_ID, choose(logits, t).astype(jnp.int32))
        tokens = tokens.at[:, t].set(nxt)
        attention = attention.at[:, t].set(jnp.where(done[:, None], 0.0, state.attention))
        return t + 1, nxt, state, tokens, attention, done | (nxt == EOS_ID)

    carry = (jnp.zeros((), jnp.int32), prev, state, tokens, attention, done)
    *_, tokens, attention, _ = jax.lax.while_loop(cond, body, carry)
    return (tokens, attention) if return_attention else tokens
