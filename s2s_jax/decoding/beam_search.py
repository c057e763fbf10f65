"""Batched beam search: all sentences and beams advance together in one ``lax.while_loop``.

Scoring (Wu et al. 2016, "Google's Neural Machine Translation System", sec. 7, eq. 14):

    s(Y, X) = log P(Y | X) / lp(Y) + cp(X; Y)
    lp(Y)   = ((5 + |Y|) / 6) ** alpha
    cp(X;Y) = beta * sum_j log(min(sum_i p_ij, 1.0))

``log P(Y | X)`` sums the token log-probabilities including EOS's, ``|Y|`` counts
the tokens including EOS, and ``p_ij`` is the attention weight of output position
i on source position j (real source tokens only). With ``alpha = beta = 0`` a score
is the plain log-probability a teacher-forced forward pass gives.

Each step, for B sentences with K live beams each (B*K decoder rows; the first step
starts from one beam per sentence, B rows):

1. every live beam is extended by every token: K*V candidates per sentence;
2. the 2K most probable are kept; each beam has one EOS candidate, so at least K
   of them continue;
3. the EOS candidates among the K most probable are scored with ``s(Y, X)`` and
   merged into the sentence's finished hypotheses (an EOS ranked lower would not
   have made the beam; as in fairseq, so a beam of one is greedy decoding);
4. the K most probable non-EOS candidates become the live beams, and the decoder
   states of their parents are gathered.

Live beams all have the same length, so they are ranked by log-probability alone;
the coverage penalty rescores finished hypotheses only (as OpenNMT-py does by
default). A sentence stops only when no live beam can still beat its n_best-th
finished hypothesis (:func:`best_future_score`), not at its first EOS. Each sentence
keeps n_best finished hypotheses: anything found later descends from a live beam, so
once no live beam can beat the n_best-th the lists are final, and a larger buffer
would return the same lists after more steps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from s2s_jax.decoding.common import NEG_INF, decode_jit, eos_constraints, output_limits
from s2s_jax.decoding.selection import search_columns
from s2s_jax.errors import ConfigError
from s2s_jax.models.decoder import DecoderState
from s2s_jax.models.generator import column_indices, log_softmax_terms, normalized, strided
from s2s_jax.models.seq2seq import Seq2Seq, init_decoder
from s2s_jax.vocab import BOS_ID, EOS_ID, PAD_ID


@struct.dataclass
class Hypotheses:
    """N hypotheses per sentence. tokens: [batch, N, width], PAD after the last token;
    log_prob: [batch, N] summed token log-probabilities (-inf: no hypothesis);
    coverage: [batch, N, src_len] summed attention weights (src_len 0 without attention);
    attention: [batch, N, width, src_len], or [batch, N, width, 0] when not returned."""

    tokens: jax.Array
    log_prob: jax.Array
    coverage: jax.Array
    attention: jax.Array


def gnmt_length_penalty(length: jax.Array, alpha: float | jax.Array) -> jax.Array:
    """GNMT length penalty ``((5 + length) / 6) ** alpha`` (Wu et al. 2016, eq. 14), elementwise."""
    return ((5.0 + length) / 6.0) ** alpha


def gnmt_coverage_penalty(coverage: jax.Array, src_mask: jax.Array, beta: float | jax.Array) -> jax.Array:
    """GNMT coverage penalty ``beta * sum_j log(min(sum_i p_ij, 1))`` (Wu et al. 2016, eq. 14).

    coverage: [..., src_len] attention summed over output positions; src_mask: [..., src_len]
    (broadcastable), True at real source tokens. Returns [...]. A source token that got no
    attention at all is floored at the smallest normal float, so its term is finite (about -87).
    """
    terms = jnp.log(jnp.clip(coverage, jnp.finfo(jnp.float32).tiny, 1.0))
    return beta * jnp.sum(jnp.where(src_mask, terms, 0.0), axis=-1)


def best_future_score(log_prob: jax.Array, shortest: jax.Array, longest: jax.Array,
                      alpha: float | jax.Array) -> jax.Array:
    """Upper bound [batch] on the score of any hypothesis that finishes from live beams
    with log-probabilities ``log_prob`` [batch, K], at a length in [shortest, longest] ([batch]).

    Extending a beam only adds log-probabilities <= 0, so a finished descendant of
    length L scores at most ``log_prob / lp(L)`` (``log_prob`` <= 0, lp(L) > 0), and
    the coverage penalty is <= 0. ``lp`` is monotone in L for any alpha (increasing
    for alpha > 0, decreasing for alpha < 0), so the maximum over L is at an end of
    the range. Dead beams (-inf) bound nothing.
    """
    at_shortest = log_prob / gnmt_length_penalty(shortest, alpha)[:, None]
    at_longest = log_prob / gnmt_length_penalty(longest, alpha)[:, None]
    return jnp.max(jnp.maximum(at_shortest, at_longest), axis=-1)


def gather_beams(tree, indices: jax.Array):
    """Select hypotheses: every leaf [batch, N, ...] -> [batch, M, ...] by ``indices`` [batch, M] into N."""
    take = jax.vmap(lambda x, i: x[i])
    return jax.tree_util.tree_map(lambda x: take(x, indices), tree)


def gather_states(state: DecoderState, parents: jax.Array) -> DecoderState:
    """Decoder state rows [batch * r, ...] of r rows per sentence, and the parents ``parents``
    [batch, K] (indices into r) -> the new beams' rows [batch * K, ...]."""
    batch = parents.shape[0]

    def take(x: jax.Array) -> jax.Array:
        return x[(jnp.arange(batch)[:, None] * (x.shape[0] // batch) + parents).reshape(-1)]

    return jax.tree_util.tree_map(take, state)


def merge_finished(finished: Hypotheses, scores: jax.Array, candidates: Hypotheses,
                   candidate_scores: jax.Array) -> tuple[Hypotheses, jax.Array]:
    """Keep the best N of the finished hypotheses (scores [batch, N], sorted descending)
    and the new candidates (candidate_scores [batch, M], -inf where a candidate did not
    finish). Returns the N best, sorted by score; ties keep earlier finished first."""
    pooled = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b], axis=1), finished, candidates)
    best, idx = jax.lax.top_k(jnp.concatenate([scores, candidate_scores], axis=1), scores.shape[1])
    return gather_beams(pooled, idx), best


def _extend(parents: Hypotheses, tokens: jax.Array, log_prob: jax.Array, weights: jax.Array,
            t: jax.Array) -> Hypotheses:
    """Append ``tokens`` [batch, M] at position ``t`` to the gathered ``parents``; ``weights``
    [batch, M, src_len] are the attention weights that produced them."""
    attention = parents.attention
    if attention.shape[-1]:
        attention = attention.at[:, :, t].set(weights)
    return Hypotheses(tokens=parents.tokens.at[:, :, t].set(tokens), log_prob=log_prob,
                      coverage=parents.coverage + weights, attention=attention)


def best_extensions(logits: jax.Array, log_prob: jax.Array, t: jax.Array, limits: jax.Array, min_len: int,
                    n: int) -> tuple[jax.Array, jax.Array]:
    """The n best extensions of each sentence's K beams: (log-probabilities [batch, n] descending,
    indices [batch, n] into K * vocab, beam-major), ``jax.lax.top_k``'s values and indices over
    ``log_prob[:, :, None] + log_softmax(logits)`` [batch, K, vocab], with EOS constrained as
    :func:`~s2s_jax.decoding.common.eos_constraints` says (-inf where banned).

    logits: [batch * K, vocab]; log_prob: [batch, K] the beams' log-probabilities; limits:
    [batch * K]. The sentence's row of K * vocab extensions is viewed as K :func:`strided` views
    stacked, whose columns :func:`~s2s_jax.decoding.selection.search_columns` searches. Their
    maxima come from the logits' column maxima, which the log-softmax computes anyway: an
    extension's log-probability is non-decreasing in its logit, and only the column holding EOS
    (and, where EOS is forced, every other column) holds a constrained token. So only the
    candidates' log-probabilities are computed, and no pass over the K * vocab extensions is
    made unless a tie leaves the search unsure.
    """
    rows, vocab = logits.shape
    batch, k = log_prob.shape
    maxima, shift, log_sum = log_softmax_terms(logits)
    view = strided(logits)
    columns = maxima.shape[-1]
    ban, force = eos_constraints(t, limits, min_len)

    def extend(x, token):
        """x [rows, ...] logits of the tokens ``token`` -> their extensions' log-probabilities."""
        def per_row(a):
            return a.reshape(rows, *[1] * (x.ndim - 1))

        lp = normalized(x, per_row(shift), per_row(log_sum))
        banned = (per_row(ban) & (token == EOS_ID)) | (per_row(force) & (token != EOS_ID)) | (lp <= NEG_INF)
        return per_row(log_prob) + jnp.where(banned, -jnp.inf, lp)

    def everything():
        token = jnp.arange(vocab, dtype=jnp.int32)
        return tuple(jax.lax.top_k(extend(logits, token).reshape(batch, k * vocab), n))

    if columns <= 2 * n:
        return everything()
    eos_column = EOS_ID % columns
    eos_tokens = column_indices(jnp.array([eos_column], jnp.int32), columns)
    eos_max = jnp.max(extend(view[:, :, eos_column:eos_column + 1], eos_tokens), axis=(1, 2))
    column_max = extend(maxima, jnp.full((columns,), -1)).at[:, eos_column].set(eos_max)

    def gather(kept):  # kept [batch, m] -> the K beams' elements [batch, K, DEPTH, m], in index order
        token = column_indices(kept, columns)  # [batch, DEPTH, m]
        x = jnp.take_along_axis(view, jnp.repeat(kept, k, axis=0)[:, None, :], axis=2)
        values = extend(x, jnp.repeat(token, k, axis=0)).reshape(batch, k, *token.shape[1:])
        return values, token[:, None] + vocab * jnp.arange(k, dtype=jnp.int32)[:, None, None]

    values, indices, unsure = search_columns(jnp.max(column_max.reshape(batch, k, columns), axis=1), gather, n)
    return jax.lax.cond(jnp.any(unsure), everything, lambda: (values, indices))


def beam_search(model: Seq2Seq, params, src: jax.Array, *, beam_size: int, max_len: int,
                length_penalty: float = 0.6, n_best: int = 1, min_len: int = 0, max_len_a: float = 0.0,
                coverage_penalty: float = 0.0, return_attention: bool = False):
    """src [batch, src_len] -> (tokens [batch, n_best, width], scores [batch, n_best]).

    Each sentence's ``n_best`` hypotheses, best first, each ending in EOS and then PAD.
    ``max_len``, ``max_len_a`` and ``min_len`` bound the length as in greedy decoding
    (:mod:`s2s_jax.decoding.common`). Scores follow the module docstring with
    ``alpha = length_penalty`` and ``beta = coverage_penalty``. A slot with no
    hypothesis (only when fewer than ``n_best`` sequences fit the length limits) is all
    PAD with score -inf. With ``return_attention`` also returns the hypotheses' attention
    weights [batch, n_best, width, src_len] (zero after EOS).
    """
    if not 1 <= n_best <= beam_size:
        raise ConfigError(f"n_best (decode.n_best) must be between 1 and beam_size ({beam_size}); got {n_best}.")
    if isinstance(coverage_penalty, (int, float)) and coverage_penalty != 0.0:
        if coverage_penalty < 0:
            raise ConfigError(f"coverage_penalty (decode.coverage_penalty) must be >= 0; got {coverage_penalty}.")
        if model.cfg.attention == "none":
            raise ConfigError("coverage_penalty (decode.coverage_penalty) needs a model with attention "
                              "(model.attention is 'none').")
    return _beam_search(model, params, src, length_penalty, coverage_penalty, beam_size=beam_size, max_len=max_len,
                        n_best=n_best, min_len=min_len, max_len_a=max_len_a, return_attention=return_attention)


@decode_jit(static_argnames=("model", "beam_size", "max_len", "n_best", "min_len", "max_len_a", "return_attention"))
def _beam_search(model: Seq2Seq, params, src: jax.Array, alpha: float | jax.Array, beta: float | jax.Array, *,
                 beam_size: int, max_len: int, n_best: int, min_len: int, max_len_a: float, return_attention: bool):
    k = beam_size
    batch, src_len = src.shape
    state, step, _ = init_decoder(model, params, src, repeat=k, normalize=False)
    width, limits = output_limits(src, max_len, max_len_a)
    att_len = src_len if model.cfg.attention != "none" else 0
    src_mask = (src != PAD_ID)[:, None, :att_len]

    def empty(n: int, log_prob: jax.Array) -> Hypotheses:
        return Hypotheses(tokens=jnp.full((batch, n, width), PAD_ID, jnp.int32), log_prob=log_prob,
                          coverage=jnp.zeros((batch, n, att_len), jnp.float32),
                          attention=jnp.zeros((batch, n, width, att_len if return_attention else 0), jnp.float32))

    def advance(t, logits, state, alive, finished, scores, done):
        """Step t's choices: logits [batch * r, vocab] and the new decoder state of r live beams per
        sentence (alive: [batch, r]) -> the carry of step t + 1, with K beams per sentence."""
        r = alive.log_prob.shape[1]
        vocab = logits.shape[-1]
        n = min(2 * k, r * vocab)
        top_log_prob, top = best_extensions(logits, alive.log_prob, t, jnp.repeat(limits, r), min_len, n)
        if n < 2 * k:  # fewer extensions than 2K (a first step over a tiny vocabulary): the rest are dead
            top_log_prob = jnp.pad(top_log_prob, ((0, 0), (0, 2 * k - n)), constant_values=-jnp.inf)
            top = jnp.pad(top, ((0, 0), (0, 2 * k - n)))
        parents, tokens = top // vocab, top % vocab
        weights = gather_beams(state.attention.reshape(batch, r, att_len), parents)
        candidates = _extend(gather_beams(alive, parents), tokens, top_log_prob, weights, t)

        is_eos = tokens == EOS_ID
        finishes = is_eos & (jnp.arange(2 * k) < k)  # top_k sorts: the first K would make the beam
        final = candidates.log_prob / gnmt_length_penalty(t + 1, alpha)
        if att_len:
            final = final + gnmt_coverage_penalty(candidates.coverage, src_mask, beta)
        finished, scores = merge_finished(finished, scores, candidates, jnp.where(finishes, final, -jnp.inf))

        live_log_prob, keep = jax.lax.top_k(jnp.where(is_eos, -jnp.inf, candidates.log_prob), k)
        alive = gather_beams(candidates, keep).replace(log_prob=live_log_prob)
        state = gather_states(state, jnp.take_along_axis(parents, keep, axis=1))

        # A live beam can still finish at lengths [shortest, limit]: EOS is banned before min_len.
        shortest = jnp.minimum(jnp.maximum(t + 2, min_len + 1), limits)
        hopeless = best_future_score(alive.log_prob, shortest, limits, alpha) <= scores[:, -1]
        done = done | (t + 1 >= limits) | hopeless
        alive = alive.replace(log_prob=jnp.where(done[:, None], -jnp.inf, alive.log_prob))
        return t + 1, state, alive, finished, scores, done

    def cond(carry):
        t, _, _, _, _, done = carry
        return (t < width) & ~jnp.all(done)

    def body(carry):
        t, state, alive, *rest = carry
        logits, state = step(state, alive.tokens[:, :, t - 1].reshape(-1))
        return advance(t, logits, state, alive, *rest)

    # Until the first token every beam of a sentence is the same, so the first step runs one row per
    # sentence (the state's every K-th row) and extends one live beam into K.
    logits, first = step(jax.tree_util.tree_map(lambda x: x[::k], state), jnp.full((batch,), BOS_ID, jnp.int32))
    carry = advance(jnp.zeros((), jnp.int32), logits, first, empty(1, jnp.zeros((batch, 1))),
                    empty(n_best, jnp.full((batch, n_best), -jnp.inf)), jnp.full((batch, n_best), -jnp.inf),
                    jnp.zeros((batch,), bool))
    *_, finished, scores, _ = jax.lax.while_loop(cond, body, carry)
    found = scores > -jnp.inf
    tokens = jnp.where(found[:, :, None], finished.tokens, PAD_ID)
    if return_attention:
        return tokens, scores, jnp.where(found[:, :, None, None], finished.attention, 0.0)
    return tokens, scores
