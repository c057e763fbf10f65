#!/usr/bin/env python3
"""The decoding step's generator on XLA:CPU: GFLOP/s of the product ``a @ kernel`` ([128, 1792]
x [1792, 8000], the attention shape's generator at batch 128) alone and followed by the
log-softmax every decoding step takes, with the kernel stored [dim, vocab] (``cols``) or by rows,
[vocab, dim] (``rows``, as a decoding step reads it), compiled with XLA's default, without YNNPACK
fusions, and with the option ``decode_jit`` sets (its dots alone on YNNPACK;
s2s_jax/decoding/common.py). Products in ``--dtype`` (bfloat16: bfloat16 x bfloat16 -> float32).
Medians of ``--calls`` calls, the variants alternating. Prints one JSON object.

    python -m benchmarks.generator_step [--dtype bfloat16]
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
from s2s_jax.models.matmul import dot


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=128)
    p.add_argument("--dim", type=int, default=1792)
    p.add_argument("--vocab", type=int, default=8000)
    p.add_argument("--calls", type=int, default=10)
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    a = p.parse_args()
    rng = np.random.default_rng(0)
    x = jax.numpy.asarray(rng.standard_normal((a.rows, a.dim), np.float32))
    w = rng.standard_normal((a.dim, a.vocab), np.float32) / np.sqrt(a.dim)
    kernels = {"cols": (jax.numpy.asarray(w), False), "rows": (jax.numpy.asarray(w.T.copy()), True)}
    exprs = {"matmul": lambda y: y, "matmul+log_softmax": jax.nn.log_softmax}
    options = {"xla_default": None, "without_ynn_fusions": {"xla_cpu_experimental_ynn_fusion_type": ""},
               "decode_jit": CPU_DECODE_OPTIONS}

    def program(expr, rows: bool, opt):
        return jax.jit(lambda x, k: expr(dot(x, k, a.dtype, transpose_w=rows)), compiler_options=opt)

    programs = {(e, lay, o): program(fn, kernels[lay][1], opt)
                for e, fn in exprs.items() for lay in kernels for o, opt in options.items()}
    for (_, lay, _), fn in programs.items():
        jax.block_until_ready(fn(x, kernels[lay][0]))
    times: dict = {k: [] for k in programs}
    for _ in range(a.calls):
        for k, fn in programs.items():
            times[k].append(timed(lambda fn=fn, k=k: fn(x, kernels[k[1]][0])))
    flop = 2 * a.rows * a.dim * a.vocab
    result = {"shape": [a.rows, a.dim, a.vocab], "dtype": a.dtype, "device": str(jax.devices()[0]),
              "calls": a.calls,
              "gflop_s": {e: {lay: {o: round(flop / statistics.median(times[e, lay, o]) / 1e9, 1) for o in options}
                              for lay in kernels} for e in exprs}}
    print(json.dumps(result))


if __name__ == "__main__":
    reexec_with_huge_pages()
    main()
