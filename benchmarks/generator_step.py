#!/usr/bin/env python3
"""The decoding step's generator on XLA:CPU, with and without YNNPACK fusions: GFLOP/s of the
matmul ``a @ b`` ([128, 1792] x [1792, 8000], the attention shape's generator at batch 128)
alone and followed by the log-softmax every decoding step takes, compiled with XLA's default
and with the option ``decode_jit`` sets (s2s_jax/decoding/common.py). Medians of ``--calls``
calls, the variants alternating. Prints one JSON object.

    python -m benchmarks.generator_step
"""

from __future__ import annotations

import argparse
import json
import statistics

import jax
import numpy as np

from benchmarks.decode import timed
from s2s_jax.decoding.common import CPU_DECODE_OPTIONS
from s2s_jax.hugepages import reexec_with_huge_pages


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=128)
    p.add_argument("--dim", type=int, default=1792)
    p.add_argument("--vocab", type=int, default=8000)
    p.add_argument("--calls", type=int, default=10)
    a = p.parse_args()
    rng = np.random.default_rng(0)
    x = jax.numpy.asarray(rng.standard_normal((a.rows, a.dim), np.float32))
    w = jax.numpy.asarray(rng.standard_normal((a.dim, a.vocab), np.float32) / np.sqrt(a.dim))
    exprs = {"matmul": lambda x, w: x @ w, "matmul+log_softmax": lambda x, w: jax.nn.log_softmax(x @ w)}
    options = {"xla_default": None, "without_ynn_fusions": CPU_DECODE_OPTIONS["float32"]}
    programs = {(e, o): jax.jit(fn, compiler_options=opt) for e, fn in exprs.items() for o, opt in options.items()}
    for fn in programs.values():
        jax.block_until_ready(fn(x, w))
    times: dict = {k: [] for k in programs}
    for _ in range(a.calls):
        for k, fn in programs.items():
            times[k].append(timed(lambda fn=fn: fn(x, w)))
    flop = 2 * a.rows * a.dim * a.vocab
    result = {"shape": [a.rows, a.dim, a.vocab], "device": str(jax.devices()[0]), "calls": a.calls,
              "gflop_s": {e: {o: round(flop / statistics.median(times[e, o]) / 1e9, 1) for o in options}
                          for e in exprs}}
    print(json.dumps(result))


if __name__ == "__main__":
    reexec_with_huge_pages()
    main()
