"""Training throughput of the reference shapes: target tokens/s of a full train step
(forward, backward, clipping, Adam update), first-step compile time, peak host memory,
and matmul FLOPs per second over the machine's measured matmul rate.

    python -m benchmarks.train --model attention --steps 5
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.shapes import random_batch, shape_config, train_flops
from s2s_jax.hugepages import reexec_with_huge_pages
from s2s_jax.models import encoder
from s2s_jax.models.recurrence import recurrence
from s2s_jax.precision import cpu_bfloat16_flags
from s2s_jax.training.step import create_train_state, train_step


def matmul_rate(dtype: str = "float32", n: int = 2048, rounds: int = 5) -> float:
    """FLOP/s of a large matmul on this machine with ``dtype`` inputs and float32 results. The
    faster of float32 and bfloat16 (the matrix units' rate, where the CPU has them) is the
    utilisation's denominator."""
    a = jnp.ones((n, n), dtype)
    f = jax.jit(lambda x: jnp.dot(x, x, preferred_element_type=jnp.float32))
    f(a).block_until_ready()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        f(a).block_until_ready()
        times.append(time.perf_counter() - t)
    return 2.0 * n ** 3 / float(np.median(times))


def cpu_name() -> str:
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    return platform.processor()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", choices=["lstm", "attention"], default="attention")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--src-len", type=int, default=24)
    p.add_argument("--tgt-len", type=int, default=24)
    p.add_argument("--vocab", type=int, default=8000)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--autodiff-recurrence", action="store_true",
                   help="differentiate the recurrent layers' scan with autodiff instead of their hand-written "
                        "backward pass (to measure what the latter gains)")
    a = p.parse_args()
    if a.autodiff_recurrence:
        encoder.recurrence = lambda kind, *args: recurrence.fun(kind, *args)

    cfg = shape_config(a.model, a.vocab, a.batch, max(a.src_len, a.tgt_len), dtype=a.dtype)
    state = create_train_state(cfg, jax.random.key(0))
    params = sum(x.size for x in jax.tree_util.tree_leaves(state.params))
    batch = random_batch(a.batch, a.src_len, a.tgt_len, a.vocab)
    key = jax.random.key(1)

    t = time.perf_counter()
    state, m = train_step(state, batch, key)
    float(m["loss"])
    first_step_s = time.perf_counter() - t

    times = []
    for i in range(a.steps):
        t = time.perf_counter()
        state, m = train_step(state, batch, jax.random.fold_in(key, i))
        float(m["loss"])
        times.append(time.perf_counter() - t)
    step_s = float(np.median(times))
    flops = train_flops(a.model, a.batch, a.src_len, a.tgt_len, a.vocab)
    rates = {d: matmul_rate(d) for d in ("float32", "bfloat16")}
    fastest = max(rates, key=rates.get)
    print(json.dumps({
        "impl": f"jax-{jax.__version__}", "model": a.model, "autodiff_recurrence": a.autodiff_recurrence,
        "params": int(params), "dtype": a.dtype,
        "device": jax.devices()[0].device_kind, "batch": a.batch, "src_len": a.src_len, "tgt_len": a.tgt_len,
        "vocab": a.vocab, "train_step_ms": round(step_s * 1e3, 2),
        "train_tgt_tokens_per_s": round(a.batch * a.tgt_len / step_s, 1),
        # the first call compiles and runs a step: less a step's median time, the compilation
        "first_step_s": round(first_step_s, 2), "first_step_compile_s": round(first_step_s - step_s, 2),
        "peak_host_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "model_gflop_per_step": round(flops / 1e9, 1), "achieved_gflop_s": round(flops / step_s / 1e9, 1),
        **{f"matmul_gflop_s_{d}": round(r / 1e9, 1) for d, r in rates.items()},
        "fastest_matmul_dtype": fastest, "utilisation": round(flops / step_s / rates[fastest], 3),
        "cpu": cpu_name(), "cpu_bf16_flags": cpu_bfloat16_flags(),
    }))


if __name__ == "__main__":
    reexec_with_huge_pages()
    main()
