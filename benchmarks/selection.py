#!/usr/bin/env python3
"""The decoding step's token choice on XLA:CPU: ``jnp.argmax`` against
:func:`s2s_jax.decoding.selection.first_argmax` over greedy decoding's [128, 8000] logits,
and beam search's step from its [128 x 5, 8000] logits to each sentence's 10 best extensions
(the attention shape, batch 128, beam 5): ``jax.nn.log_softmax``, the beams' log-probabilities
added and ``jax.lax.top_k`` over each sentence's 5 x 8000, against
:func:`s2s_jax.decoding.beam_search.best_extensions`.
Beside them, the reductions of a step alone over the beams' rows: a row's maximum taken whole,
by the maxima of chunks of 32 consecutive elements and by the columns of the rows'
:func:`~s2s_jax.models.generator.strided` views, and the log-softmax.
Each is timed inside a 24-step ``fori_loop``, compiled as decoding is, and reported less the
same loop reading one column, so the figure is the choice's own cost per step. Variants
alternate; medians of ``--calls``. Prints one JSON object.

    python -m benchmarks.selection [--calls 9]
"""

from __future__ import annotations

import argparse
import json
import statistics

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.decode import timed
from benchmarks.train import cpu_name
from s2s_jax.decoding.beam_search import best_extensions
from s2s_jax.decoding.common import CPU_DECODE_OPTIONS
from s2s_jax.decoding.selection import first_argmax
from s2s_jax.hugepages import reexec_with_huge_pages
from s2s_jax.models.generator import column_maxima, log_softmax, strided

STEPS = 24


def in_loop(choose):
    """A decoding-like loop: each step perturbs the scores by the previous choice, so nothing is hoisted."""
    def run(x):
        def body(_, carry):
            x, total = carry
            chosen = choose(x).astype(jnp.float32).sum()
            return x.at[:, 0].add(1e-6 * chosen), total + chosen
        return jax.lax.fori_loop(0, STEPS, body, (x, 0.0))[1]
    return jax.jit(run, compiler_options=CPU_DECODE_OPTIONS)


def chunk_maxima(x: jax.Array, chunk: int = 32) -> jax.Array:
    """x [rows, n] (n a multiple of chunk) -> [rows, n / chunk], the maxima of consecutive runs."""
    return jax.lax.optimization_barrier(jnp.max(x.reshape(x.shape[0], -1, chunk), axis=-1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=9)
    p.add_argument("--vocab", type=int, default=8000)
    p.add_argument("--beam-size", type=int, default=5)
    a = p.parse_args()
    rng = np.random.default_rng(0)
    greedy = jnp.asarray(rng.standard_normal((128, a.vocab)), jnp.float32)
    beam = jnp.asarray(rng.standard_normal((128 * a.beam_size, a.vocab)), jnp.float32)
    beam_log_prob = jnp.asarray(np.log(rng.random((128, a.beam_size))), jnp.float32)
    limits = jnp.full((128 * a.beam_size,), STEPS + 1, jnp.int32)
    k = 2 * a.beam_size

    def every_extension(x):
        extended = beam_log_prob[:, :, None] + jax.nn.log_softmax(x).reshape(128, a.beam_size, a.vocab)
        return jax.lax.top_k(extended.reshape(128, -1), k)[1]

    programs = {
        "greedy loop (baseline)": (in_loop(lambda x: x[:, 0]), greedy),
        "greedy jnp.argmax": (in_loop(lambda x: jnp.argmax(x, axis=-1)[:, None]), greedy),
        "greedy first_argmax": (in_loop(lambda x: first_argmax(x)[:, None]), greedy),
        "beam loop (baseline)": (in_loop(lambda x: x[:, 0]), beam),
        "beam log_softmax and lax.top_k": (in_loop(every_extension), beam),
        "beam best_extensions": (in_loop(lambda x: best_extensions(x, beam_log_prob, 0, limits, 0, k)[1]), beam),
        # The reductions alone, over beam search's rows: a row's maximum whole, by chunks of 32
        # consecutive elements, and by the columns of the strided view; the log-softmax.
        "beam row max": (in_loop(lambda x: jnp.max(x, axis=-1)), beam),
        "beam row max by chunks": (in_loop(lambda x: jnp.max(chunk_maxima(x), axis=-1)), beam),
        "beam row max by columns": (in_loop(lambda x: jnp.max(column_maxima(strided(x)), axis=-1)), beam),
        "beam jax.nn.log_softmax": (in_loop(jax.nn.log_softmax), beam),
        "beam log_softmax": (in_loop(log_softmax), beam),
    }
    for fn, x in programs.values():
        jax.block_until_ready(fn(x))
    times: dict = {name: [] for name in programs}
    for _ in range(a.calls):
        for name, (fn, x) in programs.items():
            times[name].append(timed(lambda fn=fn, x=x: fn(x)))
    per_step = {name: statistics.median(t) / STEPS * 1e3 for name, t in times.items()}
    result = {"cpu": cpu_name(), "calls": a.calls, "ms_per_step": {n: round(v, 3) for n, v in per_step.items()},
              "ms_per_step_over_baseline": {
                  n: round(v - per_step[f"{n.split()[0]} loop (baseline)"], 3)
                  for n, v in per_step.items() if "baseline" not in n}}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    reexec_with_huge_pages()
    main()
