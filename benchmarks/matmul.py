"""The matmul evidence behind ``s2s_jax/models/matmul.py``: GFLOP/s of one XLA:CPU dot in
float32 and in bfloat16, by result dtype and operand layout, on the shapes a training step
runs, and a GRU layer's recurrence with one product per gate against one fused product.

    python -m benchmarks.matmul [--calls 15]

Variants alternate call by call; medians of ``--calls``. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
from jax import lax

from benchmarks.train import cpu_name
from s2s_jax.hugepages import reexec_with_huge_pages
from s2s_jax.models.matmul import materialized_transpose
from s2s_jax.precision import cpu_bfloat16_flags

F32, BF16 = jnp.float32, jnp.bfloat16
# (m, k, n): a square reference; the generator over a batch of 128 x 24 targets (forward); one
# decoder step's generator; one recurrent step of 3 gates; one gate; an input projection over all steps.
SHAPES = [(2048, 2048, 2048), (3072, 1792, 8000), (128, 1792, 8000), (128, 512, 1536), (128, 512, 512),
          (3072, 256, 1536)]


def _dot(a, b, lhs_contract=1, rhs_contract=0, out=None):
    return lax.dot_general(a, b, (((lhs_contract,), (rhs_contract,)), ((), ())), preferred_element_type=out)


def variants(m: int, k: int, n: int) -> dict:
    """name -> (program, operands). ``a``: [m, k] (or [k, m] stored, for the transposed-lhs
    variants that compute a weight gradient's x^T @ dy); ``b``: [k, n]."""
    key = jax.random.key(0)
    a = jax.random.normal(key, (m, k), F32)
    at = jax.random.normal(key, (k, m), F32)
    b = jax.random.normal(jax.random.fold_in(key, 1), (k, n), F32)
    bt = jax.random.normal(jax.random.fold_in(key, 1), (n, k), F32)
    a16, at16, b16, bt16 = (x.astype(BF16) for x in (a, at, b, bt))
    return {
        "float32": (lambda a, b: _dot(a, b), (a, b)),
        "bf16 -> bf16": (lambda a, b: _dot(a, b), (a16, b16)),
        "bf16 -> f32": (lambda a, b: _dot(a, b, out=F32), (a16, b16)),
        "bf16 -> f32, rhs [n, k] (dy @ w^T)": (lambda a, b: _dot(a, b, 1, 1, out=F32), (a16, bt16)),
        "bf16 -> f32, lhs [k, m] (x^T @ dy)": (lambda a, b: _dot(a, b, 0, 0, out=F32), (at16, b16)),
        "bf16 -> f32, lhs materialized_transpose": (
            lambda a, b: _dot(materialized_transpose(a), b, out=F32), (at16, b16)),
        "float32, lhs [k, m] (x^T @ dy)": (lambda a, b: _dot(a, b, 0, 0), (at, b)),
    }


def gru_recurrence(dtype, fused: str, batch: int = 128, hidden: int = 512, steps: int = 24):
    """(program, operands): a GRU's recurrence over ``steps`` (x @ W precomputed). ``fused``:
    "" one [hidden, hidden] product per gate; "product" one [hidden, 3 hidden] product sliced by
    gate; "product+inputs" that, with the inputs also one [.., 3 hidden] array sliced by gate."""
    key = jax.random.key(0)
    ks = [jax.random.normal(jax.random.fold_in(key, i), (hidden, hidden)) * 0.03 for i in range(3)]
    xs = [jax.random.normal(jax.random.fold_in(key, 10 + i), (steps, batch, hidden)) for i in range(3)]
    h0 = jnp.zeros((batch, hidden))

    def split(a):
        return [a[:, i * hidden:(i + 1) * hidden] for i in range(3)]

    def run(ks, xs, h0):
        kernels = [jnp.concatenate(ks, axis=1).astype(dtype)] if fused else [k.astype(dtype) for k in ks]
        xs = jnp.concatenate(xs, axis=-1) if fused == "product+inputs" else xs

        def body(h, x):
            hp = [_dot(h.astype(dtype), k, out=F32) for k in kernels]
            hp = split(hp[0]) if fused else hp
            x = split(x) if fused == "product+inputs" else x
            r, z = jax.nn.sigmoid(x[0] + hp[0]), jax.nn.sigmoid(x[1] + hp[1])
            h = (1 - z) * jnp.tanh(x[2] + r * hp[2]) + z * h
            return h, h

        return lax.scan(body, h0, xs)[1]

    return run, (ks, xs, h0)


def timed(fn, args) -> float:
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - t


def measure(programs: dict, calls: int) -> dict[str, float]:
    """name -> median seconds, the programs alternating call by call."""
    jitted = {name: (jax.jit(fn), args) for name, (fn, args) in programs.items()}
    for fn, args in jitted.values():
        jax.block_until_ready(fn(*args))
    times: dict[str, list[float]] = {name: [] for name in jitted}
    for _ in range(calls):
        for name, (fn, args) in jitted.items():
            times[name].append(timed(fn, args))
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=15)
    a = p.parse_args()
    result: dict = {"jax": jax.__version__, "cpu": cpu_name(), "cpu_bf16_flags": cpu_bfloat16_flags(), "dots": {}}
    for m, k, n in SHAPES:
        seconds = measure(variants(m, k, n), a.calls)
        result["dots"][f"{m}x{k}x{n}"] = {name: round(2 * m * k * n / s / 1e9, 1) for name, s in seconds.items()}
    gru = measure({f"{d} {f or 'per gate'}": gru_recurrence(getattr(jnp, d), f)
                   for d in ("float32", "bfloat16") for f in ("", "product", "product+inputs")}, a.calls)
    result["gru_recurrence_ms"] = {name: round(s * 1e3, 2) for name, s in gru.items()}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    reexec_with_huge_pages()
    main()
