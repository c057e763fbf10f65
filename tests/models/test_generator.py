"""The generator against a NumPy rendering of its formula: plain, with the maxout deep output
layer, and with the output matrix tied to the embedding."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend.core import Var

from s2s_jax.models.generator import Generator, log_softmax, log_softmax_terms, softmax_cross_entropy, vocabulary_rows
from s2s_jax.models.matmul import dot


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _maxout(t: np.ndarray) -> np.ndarray:
    """t_j = max(t~_{2j-1}, t~_{2j}) over consecutive pairs of units, written as a loop."""
    return np.stack([np.maximum(t[..., 2 * j], t[..., 2 * j + 1]) for j in range(t.shape[-1] // 2)], axis=-1)


def test_log_softmax_over_strided_columns():
    """The column maxima, the shift and the normaliser against NumPy, for rows that are no
    multiple of the view's depth (32): element i * columns + j is in column j."""
    logits = np.random.default_rng(0).standard_normal((3, 1001)).astype(np.float32) * 10
    maxima, shift, log_sum = (np.asarray(a) for a in log_softmax_terms(logits))
    columns = -(-1001 // 32)
    padded = np.pad(logits, ((0, 0), (0, 32 * columns - 1001)), constant_values=-np.inf)
    np.testing.assert_array_equal(maxima, padded.reshape(3, 32, columns).max(axis=1))
    np.testing.assert_array_equal(shift[:, 0], logits.max(-1))
    np.testing.assert_allclose(log_sum[:, 0], np.log(np.exp(logits - shift).sum(-1)), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(log_softmax(logits)), _log_softmax(logits), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("maxout_units", [0, 4])
def test_generator_matches_its_formula(maxout_units):
    x = np.asarray(jax.random.normal(jax.random.key(1), (3, 2, 7)))
    gen = Generator(11, maxout_units=maxout_units)
    params = gen.init(jax.random.key(0), x)["params"]
    p = jax.tree_util.tree_map(np.asarray, params)
    h = x
    if maxout_units:
        assert p["maxout"]["kernel"].shape == (7, 2 * maxout_units)
        h = _maxout(h @ p["maxout"]["kernel"] + p["maxout"]["bias"])
    assert p["output"]["kernel"].shape == (h.shape[-1], 11)  # [dim, vocab], as Dense's
    expected = _log_softmax(h @ p["output"]["kernel"] + p["output"]["bias"])
    np.testing.assert_allclose(np.asarray(gen.apply({"params": params}, x)), expected, rtol=1e-5, atol=1e-5)
    rows = vocabulary_rows(params["output"]["kernel"], jnp.float32)
    np.testing.assert_array_equal(rows, p["output"]["kernel"].T)
    np.testing.assert_allclose(np.asarray(gen.apply({"params": params}, x, rows=rows)), expected, rtol=1e-5, atol=1e-5)


def test_maxout_generator_tied_to_the_embedding():
    class Tied(nn.Module):
        @nn.compact
        def __call__(self, x):
            embed = nn.Embed(11, 5, name="embed")
            return Generator(11, embed, maxout_units=4, name="gen")(x)

    x = np.asarray(jax.random.normal(jax.random.key(1), (3, 7)))
    params = Tied().init(jax.random.key(0), x)["params"]
    p = jax.tree_util.tree_map(np.asarray, params)
    t = _maxout(x @ p["gen"]["maxout"]["kernel"] + p["gen"]["maxout"]["bias"])
    logits = (t @ p["gen"]["tied_projection"]["kernel"]) @ p["embed"]["embedding"].T + p["gen"]["bias"]
    np.testing.assert_allclose(np.asarray(Tied().apply({"params": params}, x)), _log_softmax(logits),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("rows", [False, True])
def test_fused_cross_entropy_equals_log_softmax_and_gather(label_smoothing, dtype, rows):
    """softmax_cross_entropy's values and its hand-written gradient against autodiff of the
    log-softmax path: the same logits (products in ``dtype``), the loss read off the log-probs;
    for a kernel [dim, vocab] and one by rows [vocab, dim]."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 9)).astype(np.float32)
    w = rng.standard_normal((11, 9) if rows else (9, 11)).astype(np.float32)
    b = rng.standard_normal(11).astype(np.float32)
    labels = rng.integers(0, 11, 12)
    g = rng.standard_normal((3, 12)).astype(np.float32)  # cotangents of loss, nll, correct

    def reference(x, w, b):
        lp = jax.nn.log_softmax(dot(x, w, dtype, transpose_w=rows) + b, axis=-1)
        nll = -jnp.take_along_axis(lp, labels[:, None], axis=-1)[:, 0]
        loss = (1 - label_smoothing) * nll - label_smoothing * jnp.mean(lp, axis=-1)
        correct = (jnp.argmax(lp, axis=-1) == labels).astype(jnp.float32)
        return loss, nll, correct

    def pulled(fn):
        out, vjp = jax.vjp(fn, x, w, b)
        return out, vjp(tuple(jnp.asarray(c) for c in g))

    (out, grads), (ref, ref_grads) = (
        pulled(lambda x, w, b: softmax_cross_entropy(x, w, b, labels, label_smoothing, jnp.dtype(dtype), rows)),
        pulled(reference))
    tol = 2e-2 if dtype == "bfloat16" else 1e-5  # bfloat16: the backward products round dlogits
    for a, r in zip(out, ref, strict=True):
        np.testing.assert_allclose(a, r, atol=1e-5, rtol=1e-5)
    for a, r in zip(grads, ref_grads, strict=True):
        np.testing.assert_allclose(a, r, atol=tol, rtol=tol)


def _ancestors(jaxpr) -> dict:
    """Each equation of a jaxpr -> the set of equations it depends on, transitively."""
    producer, ancestors = {}, {}
    for eqn in jaxpr.eqns:
        above = set()
        for v in eqn.invars:
            if isinstance(v, Var) and v in producer:
                above |= ancestors[producer[v]] | {producer[v]}
        ancestors[eqn] = above
        for v in eqn.outvars:
            producer[v] = eqn
    return ancestors


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("rows", [False, True])
def test_weight_gradient_product_runs_after_the_input_gradient(dtype, rows):
    """The backward pass's [x, 1]^T @ dlogits depends on dlogits @ w, so XLA:CPU runs the two
    products one after the other rather than at once, one core each (BENCHMARKS.md)."""
    n, dim, vocab = 8, 5, 7
    x, w, b = jnp.ones((n, dim)), jnp.ones((vocab, dim) if rows else (dim, vocab)), jnp.zeros(vocab)
    labels = jnp.arange(n) % vocab

    def backward(x, w, b):
        _, vjp = jax.vjp(lambda x, w, b: softmax_cross_entropy(x, w, b, labels, 0.0, jnp.dtype(dtype), rows)[0],
                         x, w, b)
        return vjp(jnp.ones(n))

    ancestors = _ancestors(jax.make_jaxpr(backward)(x, w, b).jaxpr)
    shape = lambda e: tuple(e.outvars[0].aval.shape)
    products = [e for e in ancestors if e.primitive.name == "dot_general" or "custom_vjp" in e.primitive.name]
    (dx,) = [e for e in products if shape(e) == (n, dim)]
    (dwb,) = [e for e in products if shape(e) == (dim + 1, vocab)]
    assert dx in ancestors[dwb]
