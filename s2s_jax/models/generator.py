"""The generator: a linear layer and log-softmax over the target vocabulary.

With ``maxout_units`` l > 0 a deep output layer comes first (Bahdanau et al.
2015, appendix A.2.2; Cho et al. 2014, appendix A): t~ = W x + b with 2l
units, t_j = max(t~_{2j-1}, t~_{2j}), and the vocabulary layer reads the l
units of t. With ``tie_embeddings`` the output matrix is the target embedding
matrix (Press & Wolf 2017); an input wider than the embedding is first
projected down to it.

For training, :meth:`Generator.token_losses` goes from the generator input straight to each
token's cross-entropy (:func:`softmax_cross_entropy`) without materialising the
``[..., vocab]`` log-probabilities, and its backward pass is the one fused expression
``softmax - target``: several passes over the batch's logits fewer than autodiff of
log-softmax and a gather (BENCHMARKS.md).
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from s2s_jax.models.attention import weighted_sum
from s2s_jax.models.matmul import Dense, dot, dot_tn, materialized_transpose
from s2s_jax.models.token_tables import lookup

# Rows of the strided view of a vocabulary row (:func:`strided`) that the reductions over it take
# (:func:`log_softmax` here, the token choices of s2s_jax.decoding.selection): enough that the
# column results are few, few enough that one column is cheap to search.
DEPTH = 32


def strided(x: jax.Array, depth: int = DEPTH, fill: float = -jnp.inf) -> jax.Array:
    """x [..., n] -> [..., depth, columns], columns = ceil(n / depth): element ``i * columns + j``
    at [i, j], so column j holds every columns-th element from j; the end padded with ``fill``.

    A reshape (a copy only to pad). XLA:CPU reduces a long row slowly: a reduction over all of it becomes a
    windowed reduction, and one over each of its chunks of consecutive elements runs element by
    element. Over the ``depth`` axis of this view a reduction is ``depth`` rows combined
    elementwise, which it vectorises: four times faster for an [640, 8000] maximum (BENCHMARKS.md,
    "Strided reductions")."""
    *lead, n = x.shape
    columns = -(-n // depth)
    padded = jnp.pad(x, [(0, 0)] * len(lead) + [(0, depth * columns - n)], constant_values=fill)
    return padded.reshape(*lead, depth, columns)


def column_indices(columns: jax.Array, n_columns: int, depth: int = DEPTH) -> jax.Array:
    """The row indices of the elements of :func:`strided` columns: columns [..., m] (indices
    into ``n_columns``) -> [..., depth, m], element ``i * n_columns + j`` at [i, j]."""
    return jnp.arange(depth, dtype=jnp.int32)[:, None] * n_columns + columns[..., None, :]


def column_maxima(view: jax.Array) -> jax.Array:
    """view [..., depth, columns] (:func:`strided`) -> [..., columns], each column's maximum. The
    barrier keeps XLA from fusing a maximum taken over these into one reduction over the row."""
    return jax.lax.optimization_barrier(jnp.max(view, axis=-2))


def row_sum(x: jax.Array) -> jax.Array:
    """x [..., n] -> [..., 1], the sum of each row, over the columns of :func:`strided` first
    (summed in another order than ``jnp.sum``: equal to rounding)."""
    return jnp.sum(jax.lax.optimization_barrier(jnp.sum(strided(x, fill=0.0), axis=-2)), axis=-1, keepdims=True)


def log_softmax_terms(logits: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """logits [..., vocab] -> (maxima [..., columns], shift [..., 1], log_sum [..., 1]): the
    logits' :func:`strided` column maxima, the row's maximum (the shift that keeps ``exp``
    finite) and the log of the sum of ``exp(logits - shift)``; :func:`normalized` makes them
    log-probabilities. A decoding step that searches the log-probabilities' columns reads their
    maxima off the logits' (:func:`normalized` is monotone), and spends a third of the time
    ``jax.nn.log_softmax`` takes on the rest."""
    maxima = column_maxima(strided(logits))
    shift = jax.lax.stop_gradient(jnp.max(maxima, axis=-1, keepdims=True))
    return maxima, shift, jnp.log(row_sum(jnp.exp(logits - shift)))


def normalized(logits: jax.Array, shift: jax.Array, log_sum: jax.Array) -> jax.Array:
    """The log-probabilities ``(logits - shift) - log_sum`` (:func:`log_softmax_terms`), elementwise
    and non-decreasing in ``logits``, so the maximum of some logits' log-probabilities is the
    log-probability of their maximum."""
    return (logits - shift) - log_sum


def log_softmax(logits: jax.Array) -> jax.Array:
    """``jax.nn.log_softmax`` over the last axis of logits [..., vocab], equal to rounding."""
    _, shift, log_sum = log_softmax_terms(logits)
    return normalized(logits, shift, log_sum)


def _smoothed_target_terms(logits, lse, labels, label_smoothing):
    label_logit = jnp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]
    nll = lse - label_logit
    if not label_smoothing:  # a pass over the logits fewer
        return nll, nll, label_logit
    loss = (1.0 - label_smoothing) * nll + label_smoothing * (lse - jnp.mean(logits, axis=-1))
    return loss, nll, label_logit


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6))
def softmax_cross_entropy(x: jax.Array, w: jax.Array, b: jax.Array, labels: jax.Array, label_smoothing: float,
                          dtype: Any, rows: bool = False) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per-token cross-entropy of the logits ``x @ w + b`` (x [N, dim], w [dim, vocab], b [vocab],
    labels [N]) -> (loss, nll, correct), each [N] float32. ``rows``: w is [vocab, dim], one row
    per word (a tied embedding), and the logits are ``x @ w^T + b``.

    nll = logsumexp(logits) - logits[label]; loss = (1 - eps) nll + eps (logsumexp - mean(logits)),
    the cross-entropy against (1 - eps) on the label and eps spread uniformly (Szegedy et al. 2016);
    correct = 1.0 where no logit exceeds the label's (zero gradient). The product runs in ``dtype``.
    """
    return _softmax_cross_entropy_fwd(x, w, b, labels, label_smoothing, dtype, rows)[0]


def _softmax_cross_entropy_fwd(x, w, b, labels, label_smoothing, dtype, rows):
    product = dot(x, w, dtype, transpose_w=rows)
    logits = product + b
    lse = jax.nn.logsumexp(logits, axis=-1)
    loss, nll, label_logit = _smoothed_target_terms(logits, lse, labels, label_smoothing)
    correct = (label_logit >= jnp.max(logits, axis=-1)).astype(jnp.float32)
    # The product, not the logits: the backward pass adds the bias where it reads them, in the
    # one pass that computes d. (The forward pass's reductions still read a logits array.)
    return (loss, nll, correct), (x, w, b, labels, product, lse)


def _softmax_cross_entropy_bwd(label_smoothing, dtype, rows, saved, grads):
    x, w, b, labels, product, lse = saved
    g_loss, g_nll, _ = grads
    vocab = product.shape[-1]
    # d loss / d logits = softmax - ((1 - eps) onehot + eps / vocab); d nll / d logits = softmax - onehot
    on_label = jnp.arange(vocab) == labels[:, None]
    d = ((g_loss + g_nll)[:, None] * jnp.exp(product + b - lse[:, None])
         - jnp.where(on_label, ((1.0 - label_smoothing) * g_loss + g_nll)[:, None], 0.0)
         - (label_smoothing / vocab) * g_loss[:, None])
    low = d.astype(dtype)
    dx = dot(low, w, dtype, transpose_w=not rows).astype(x.dtype)
    # [dw; db] = [x, 1]^T @ low in one product: the bias gradient, a sum over the rows of d, is
    # the product's row of ones, so no pass over d reduces its columns (slow on XLA:CPU), and
    # d is read once. For rows, (x^T @ low)^T rather than low^T @ x: dot_tn copies its transposed
    # operand, and x [N, dim] is the smaller. The barrier keeps XLA from folding that transpose
    # into the dot, whose transposed result no library kernel takes (BENCHMARKS.md).
    # The ones are 1 + 0 * dx[0, 0] so that this product runs after dx's. XLA:CPU ran the two
    # independent products at once, one core each, done no sooner than one after the other, and
    # the decoder's backward loop, which needs only dx, waited for both. Ordered, the step runs
    # 1.05x faster (BENCHMARKS.md, "The generator's two gradient products in turn"). A
    # non-finite dx comes from a non-finite low, which makes db non-finite anyway.
    ones = jnp.ones((x.shape[0], 1), x.dtype) * (1.0 + 0.0 * dx[:1, :1])
    dwb = dot_tn(jnp.concatenate([x, ones], axis=1), low, dtype)
    dw = jax.lax.optimization_barrier(dwb)[:-1].T if rows else dwb[:-1]
    return dx, dw.astype(w.dtype), dwb[-1].astype(b.dtype), None


softmax_cross_entropy.defvjp(_softmax_cross_entropy_fwd, _softmax_cross_entropy_bwd)


class VocabularyLayer(nn.Module):
    """The last layer's ``kernel`` [dim, vocab] and ``bias`` [vocab], named and initialised as
    flax.linen.Dense's.

    Training's products then read and write the kernel in its own layout: the logits ``x @ kernel``,
    ``dx = dlogits @ kernel^T`` and the kernel's gradient ``x^T @ dlogits``, which Adam's passes
    read row by row (a [vocab, dim] kernel's gradient came out transposed: 1.04x on the ``lstm`` train
    step, BENCHMARKS.md "The vocabulary layer's kernel as Dense's"). A decoding step reads
    :func:`vocabulary_rows` instead."""

    vocab_size: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(kernel, bias) for inputs x [..., dim]."""
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.vocab_size))
        return kernel, self.param("bias", nn.initializers.zeros, (self.vocab_size,))


def vocabulary_rows(kernel: jax.Array, dtype: Any) -> jax.Array:
    """The :class:`VocabularyLayer` kernel [dim, vocab] -> [vocab, dim] in ``dtype``, one row per
    word, as the tied embedding is: ``x @ rows^T`` contracts the right operand over its minor
    dimension, which XLA:CPU's bfloat16 kernels run up to 2.7 times faster than ``x @ kernel`` on a
    decoding step's rows (BENCHMARKS.md, "The generator's kernel stored by rows"). Made once per
    parameters (:func:`~s2s_jax.models.seq2seq.decoding_params`)."""
    return materialized_transpose(kernel.astype(dtype))


class Generator(nn.Module):
    vocab_size: int
    embedding: nn.Embed | None = None  # tied output matrix, when given
    maxout_units: int = 0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, labels: jax.Array | None = None, label_smoothing: float = 0.0,
                 normalize: bool = True, rows: jax.Array | None = None
                 ) -> jax.Array | tuple[jax.Array, jax.Array, jax.Array]:
        """x: [..., dim] -> log-probabilities [..., vocab] in float32 (``normalize=False``: the
        logits); with ``labels`` [...], :func:`softmax_cross_entropy`'s (loss, nll, correct) [...]
        instead. ``rows``: the vocabulary layer's kernel as :func:`vocabulary_rows`, read in its
        place (a decoding step's faster layout); ignored with a tied embedding, already by rows."""
        if self.maxout_units:
            pairs = Dense(2 * self.maxout_units, dtype=self.dtype, name="maxout")(x)
            x = jnp.max(pairs.reshape(*pairs.shape[:-1], self.maxout_units, 2), axis=-1)
        if self.embedding is None:
            kernel, bias = VocabularyLayer(self.vocab_size, self.dtype, name="output")(x)
            by_rows = rows is not None
            kernel = rows if by_rows else kernel
        else:
            if x.shape[-1] != self.embedding.features:
                x = Dense(self.embedding.features, use_bias=False, dtype=self.dtype, name="tied_projection")(x)
            kernel, by_rows = self.embedding.embedding, True  # [vocab, embed]
            bias = self.param("bias", nn.initializers.zeros, (self.vocab_size,))
        if labels is None:
            logits = dot(x, kernel, self.dtype, transpose_w=by_rows) + bias
            return log_softmax(logits) if normalize else logits
        terms = softmax_cross_entropy(x.reshape(-1, x.shape[-1]), kernel, bias, labels.reshape(-1),
                                      label_smoothing, jnp.dtype(self.dtype), by_rows)
        return tuple(t.reshape(labels.shape) for t in terms)


@struct.dataclass
class Readout:
    """A decoding step's logits ``W x + b`` (:class:`VocabularyLayer`) for generator inputs
    x = [h; c; emb] [rows, dim] that the vocabulary layer reads directly (the Bahdanau and the
    context-every-step arrangements), with the shares of some of x's columns computed ahead:

    - the attention context's (columns ``start:start + enc_dim``), read off the memory:
      ``W_c c = sum_s a_s (W_c m_s)``, the readout of Bahdanau et al. (2015, appendix A.2.2,
      ``C_o c_i``) with ``c_i`` of their eq. 5, reassociated. ``memory_terms`` [batch, src_len,
      vocab] holds every memory position's ``W_c m_s``, computed once per sentence; a step adds its
      attention weights times them. When ``group`` rows read each sentence (the beams of beam
      search) and src_len is about the output length, this costs about a ``group``-th of the direct
      product (BENCHMARKS.md, "The context's logits from the memory"); for one row per sentence the
      two cost alike.
    - the previous token's embedding's (the last columns): ``W_e E[y] = (E W_e^T)[y]``, a row of
      ``token_terms`` [tgt_vocab, vocab] (:func:`token_logits`), computed once per parameters; a
      step looks its tokens' rows up (BENCHMARKS.md, "Per-token tables").

    A step multiplies only the other columns of x. Equal to the direct logits to rounding.

    kernel: [vocab, kept columns]; bias: [vocab]; kept: the column ranges of x the kernel reads
    (the embedding's are last, so a kernel without them reads x up to its own width).
    """

    kernel: jax.Array
    bias: jax.Array
    memory_terms: jax.Array | None
    token_terms: jax.Array | None
    kept: tuple[tuple[int, int], ...] = struct.field(pytree_node=False)
    dtype: Any = struct.field(pytree_node=False)

    @classmethod
    def of(cls, kernel: jax.Array, bias: jax.Array, dtype: Any, *, memory: jax.Array | None = None,
           context_start: int = 0, token_terms: jax.Array | None = None) -> Readout:
        """kernel [vocab, columns], the vocabulary layer's by rows, and bias [vocab]: with
        ``token_terms`` [tgt_vocab, vocab] its columns but the embedding's (:func:`readout_kernel`),
        else all of them (:func:`vocabulary_rows`); memory [batch, src_len, enc_dim] read by the
        columns ``context_start:context_start + enc_dim``, or None. Products in ``dtype``."""
        kept = [(0, kernel.shape[1])]
        memory_terms = None
        if memory is not None:
            end = context_start + memory.shape[-1]
            memory_terms = dot(memory, kernel[:, context_start:end], dtype, transpose_w=True)
            kept = [(a, b) for a, b in ((0, context_start), (end, kernel.shape[1])) if b > a]
        rest = jnp.concatenate([kernel[:, a:b] for a, b in kept], axis=1)
        return cls(kernel=rest.astype(dtype), bias=bias, memory_terms=memory_terms, token_terms=token_terms,
                   kept=tuple(kept), dtype=dtype)

    def logits(self, x: jax.Array, weights: jax.Array, tokens: jax.Array) -> jax.Array:
        """x [rows, dim] with rows = batch * group, weights [rows, src_len] the attention weights that
        made x's context (row r reads sentence r // group), tokens [rows] the previous tokens whose
        embeddings x holds -> logits [rows, vocab] float32."""
        rest = jnp.concatenate([x[:, a:b] for a, b in self.kept], axis=-1)
        logits = dot(rest, self.kernel, self.dtype, transpose_w=True) + self.bias
        if self.memory_terms is not None:
            logits = logits + weighted_sum(weights, self.memory_terms)
        if self.token_terms is not None:
            logits = logits + lookup(self.token_terms, tokens)
        return logits


def readout_kernel(kernel: jax.Array, embed_columns: int, dtype: Any) -> jax.Array:
    """kernel [vocab, dim] by rows (:func:`vocabulary_rows`) -> [vocab, dim - embed_columns] in
    ``dtype``: the columns a :class:`Readout` with :func:`token_logits` multiplies, cut once per
    parameters rather than once per decoding call."""
    return kernel[:, :kernel.shape[1] - embed_columns].astype(dtype)


def token_logits(embedding: jax.Array, kernel: jax.Array, embed_columns: int, dtype: Any) -> jax.Array:
    """embedding [tgt_vocab, embed] (the target embedding), kernel [vocab, dim] by rows
    (:func:`vocabulary_rows`) whose last ``embed_columns`` columns read it -> [tgt_vocab, vocab]
    float32, every token's share of the logits (:class:`Readout`), with the products of a decoding
    step: in ``dtype``."""
    return dot(embedding, kernel[:, kernel.shape[1] - embed_columns:], dtype, transpose_w=True)
