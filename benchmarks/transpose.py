#!/usr/bin/env python3
"""The transposed copies of the weight gradients (``s2s_jax.models.matmul.materialized_transpose``)
on XLA:CPU: milliseconds to copy a bfloat16 [rows, columns] array as its transpose, with XLA's
one transposing copy (``plain``) and with ``materialized_transpose`` (by blocks of
``TRANSPOSE_BLOCK_ROWS`` rows where that rule applies). Rows are batch x time of the training
step (3072 = 128 x 24); columns an embedding (256), a hidden state (512), a generator input with
its row of ones (513), a bidirectional memory (1024). Medians of ``--calls`` calls, the variants
alternating. Prints one JSON object.

    python -m benchmarks.transpose [--calls 15]
"""

from __future__ import annotations

import argparse
import json
import statistics

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.decode import timed
from s2s_jax.hugepages import reexec_with_huge_pages
from s2s_jax.models.matmul import materialized_transpose

ROWS = (2048, 3072, 3584, 4096)
COLUMNS = (256, 512, 513, 1024)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=15)
    a = p.parse_args()
    plain = jax.jit(lambda x: jax.lax.optimization_barrier(x.T.reshape(-1)).reshape(x.shape[::-1]))
    variants = {"plain": plain, "materialized_transpose": jax.jit(materialized_transpose)}
    rng = np.random.default_rng(0)
    arrays = {(m, k): jnp.asarray(rng.standard_normal((m, k), np.float32), jnp.bfloat16) for m in ROWS for k in COLUMNS}
    for x in arrays.values():
        for fn in variants.values():
            np.testing.assert_array_equal(np.asarray(fn(x), np.float32), np.asarray(x, np.float32).T)
    times: dict = {(v, s): [] for v in variants for s in arrays}
    for _ in range(a.calls):
        for s, x in arrays.items():
            for v, fn in variants.items():
                times[v, s].append(timed(lambda fn=fn, x=x: fn(x)))
    print(json.dumps({"dtype": "bfloat16", "device": str(jax.devices()[0]), "calls": a.calls,
                      "ms": {f"{m}x{k}": {v: round(statistics.median(times[v, (m, k)]) * 1e3, 2) for v in variants}
                             for m, k in arrays}}))


if __name__ == "__main__":
    reexec_with_huge_pages()
    main()
