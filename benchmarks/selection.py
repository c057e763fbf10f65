#!/usr/bin/env python3
"""The decoding step's token choice on XLA:CPU: ``jnp.argmax`` against
:func:`s2s_jax.decoding.selection.first_argmax` over greedy decoding's [128, 8000]
log-probabilities, and ``jax.lax.top_k`` against :func:`s2s_jax.decoding.selection.top_k`
over beam search's [128, 5 x 8000] candidates (the attention shape, batch 128, beam 5).
Each is timed inside a 24-step ``fori_loop``, compiled as decoding is, and reported less the
same loop with a plain max, so the figure is the choice's own cost per step. Variants
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
from s2s_jax.decoding.common import CPU_DECODE_OPTIONS
from s2s_jax.decoding.selection import first_argmax, top_k
from s2s_jax.hugepages import reexec_with_huge_pages

STEPS = 24


def in_loop(choose):
    """A decoding-like loop: each step perturbs the scores by the previous choice, so nothing is hoisted."""
    def run(x):
        def body(_, carry):
            x, total = carry
            chosen = choose(x).astype(jnp.float32)
            return x.at[:, 0].add(1e-6 * chosen[:, 0]), total + chosen.sum()
        return jax.lax.fori_loop(0, STEPS, body, (x, 0.0))[1]
    return jax.jit(run, compiler_options=CPU_DECODE_OPTIONS)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=9)
    p.add_argument("--vocab", type=int, default=8000)
    p.add_argument("--beam-size", type=int, default=5)
    a = p.parse_args()
    rng = np.random.default_rng(0)
    greedy = jnp.asarray(rng.standard_normal((128, a.vocab)), jnp.float32)
    beam = jnp.asarray(rng.standard_normal((128, a.beam_size * a.vocab)), jnp.float32)
    k = 2 * a.beam_size
    programs = {
        "greedy max (baseline)": (in_loop(lambda x: jnp.max(x, axis=-1, keepdims=True)), greedy),
        "greedy jnp.argmax": (in_loop(lambda x: jnp.argmax(x, axis=-1)[:, None]), greedy),
        "greedy first_argmax": (in_loop(lambda x: first_argmax(x)[:, None]), greedy),
        "beam max (baseline)": (in_loop(lambda x: jnp.max(x, axis=-1, keepdims=True)), beam),
        "beam lax.top_k": (in_loop(lambda x: jax.lax.top_k(x, k)[1]), beam),
        "beam top_k": (in_loop(lambda x: top_k(x, k)[1]), beam),
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
                  n: round(v - per_step[f"{n.split()[0]} max (baseline)"], 3)
                  for n, v in per_step.items() if "baseline" not in n}}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    reexec_with_huge_pages()
    main()
