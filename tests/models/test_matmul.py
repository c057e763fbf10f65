"""Matrix products in the compute dtype: their values and gradients against float32 numpy on
bfloat16-rounded inputs, and where XLA:CPU runs the dots of a bfloat16 training step."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks.hlo_dots import inventory
from s2s_jax.config import Config, DataConfig, TrainConfig
from s2s_jax.models.matmul import dot, dot_tn, materialized_transpose
from s2s_jax.training.step import create_train_state, train_step
from tests.conftest import random_batch, tiny_model


def _bf16(x) -> np.ndarray:
    """x rounded to bfloat16, as float64."""
    return np.asarray(jnp.asarray(x, jnp.float32).astype(jnp.bfloat16).astype(jnp.float32), np.float64)


@pytest.mark.parametrize("shape", [(6, 10), (512, 512), (600, 512)])  # the last by blocks, one of them short
def test_materialized_transpose_is_the_transpose(shape):
    a = np.arange(shape[0] * shape[1], dtype=np.float32).reshape(shape)
    np.testing.assert_array_equal(jax.jit(materialized_transpose)(a), a.T)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_dot_and_its_gradients_are_products_of_inputs_rounded_to_dtype(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 16)).astype(np.float32)
    w = rng.standard_normal((16, 24)).astype(np.float32)
    g = rng.standard_normal((3, 5, 24)).astype(np.float32)
    y, vjp = jax.vjp(lambda x, w: dot(x, w, dtype), x, w)
    dx, dw = vjp(g)
    assert y.dtype == dx.dtype == dw.dtype == jnp.float32
    r = _bf16 if dtype == "bfloat16" else (lambda a: np.asarray(a, np.float64))
    x2, g2 = r(x).reshape(-1, 16), r(g).reshape(-1, 24)
    tol = dict(rtol=1e-5, atol=1e-4)  # float32 accumulation of exactly representable products
    np.testing.assert_allclose(y, (x2 @ r(w)).reshape(3, 5, 24), **tol)
    np.testing.assert_allclose(dx, (g2 @ r(w).T).reshape(x.shape), **tol)
    np.testing.assert_allclose(dw, x2.T @ g2, **tol)
    np.testing.assert_allclose(dot_tn(x.reshape(-1, 16), g.reshape(-1, 24), dtype), x2.T @ g2, **tol)
    if dtype == "bfloat16":  # the rounding really happened
        assert np.abs(np.asarray(y) - (x @ w)).max() > 1e-3


def test_bfloat16_training_step_runs_every_bfloat16_dot_in_the_matrix_library():
    """Each bfloat16 x bfloat16 dot of the compiled step (forward, backward, inside the time
    loops) is a YNNPACK call with a float32 result; what XLA keeps are float32 matrix-vector
    products (attention scores and contexts, the additive score's v)."""
    cfg = Config(model=tiny_model(cell="gru", attention="additive", bidirectional=True, dtype="bfloat16"),
                 data=DataConfig(batch_size=8), train=TrainConfig(optimizer="adam"))
    state = create_train_state(cfg, jax.random.key(0))
    hlo = train_step.lower(state, random_batch(8, 9, 10), jax.random.key(1)).compile().as_text()
    if "__ynn_fusion" not in hlo:
        pytest.skip("this XLA build hands no dot to YNNPACK")
    dots = inventory(hlo, trip_count=10)
    assert dots
    for d in dots:
        if d["operands"] == "bf16xbf16":
            assert d["where"] == "ynnpack" and d["result"] == "f32", d
        else:
            assert d["operands"] == "f32xf32" and (1 in (d["m"], d["n"]) or d["batch"] > 1), d
    assert sum(d["operands"] == "bf16xbf16" for d in dots) > 20
