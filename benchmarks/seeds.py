"""N seeds in one compiled program (``train.seeds``) against N runs one after another: wall
time of the train steps to the same step count, compilation included (each separate run
compiles its own step, as separate ``s2s-train`` invocations do).

    python -m benchmarks.seeds --preset dates --seeds 4 --steps 100
    python -m benchmarks.seeds --shape attention --batch 32 --length 20 --seeds 4 --steps 10

``--preset`` trains on the preset's own batches (the dates task, generated); ``--shape`` on
random batches of a reference shape (``attention`` is the Multi30k-size model). Alternates the
two ways for ``--rounds`` rounds and prints one JSON object with the median times and their ratio.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import jax
import numpy as np

from benchmarks.shapes import random_batch, shape_config
from s2s_jax.data.pipeline import load_data
from s2s_jax.hugepages import reexec_with_huge_pages
from s2s_jax.precision import resolve_dtype
from s2s_jax.presets import get_preset
from s2s_jax.training import seeds as seeds_lib
from s2s_jax.training.step import create_train_state, train_step


def batches_of(args: argparse.Namespace):
    """(config, a list of ``steps`` batches {"src", "tgt"})."""
    if args.preset:
        data, batches = load_data(get_preset(args.preset))
        out = []
        for _ in range(args.steps):
            b = next(batches)
            out.append({"src": b["src"], "tgt": b["tgt"]})
        return data.config, out
    cfg = shape_config(args.shape, args.vocab, args.batch, args.length)
    return cfg, [random_batch(args.batch, args.length, args.length, args.vocab, seed=i) for i in range(args.steps)]


def one_after_another(cfg, batches, seeds: list[int]) -> float:
    t0 = time.perf_counter()
    for seed in seeds:
        init_key, rng = jax.random.split(jax.random.key(seed))
        state = create_train_state(cfg, init_key)  # a new optimizer: its step compiles anew, as a new run's does
        for step, batch in enumerate(batches):
            state, m = train_step(state, batch, jax.random.fold_in(rng, step))
        jax.block_until_ready(m)
    return time.perf_counter() - t0


def together(cfg, batches, seeds: list[int]) -> float:
    t0 = time.perf_counter()
    keys = [jax.random.split(jax.random.key(s)) for s in seeds]
    states = [create_train_state(cfg, k[0]) for k in keys]
    first = states[0]
    states = seeds_lib.stack([s.replace(tx=first.tx, lr_fn=first.lr_fn) for s in states])
    rngs = seeds_lib.stack([k[1] for k in keys])
    step_fn = jax.jit(seeds_lib.seeds_train_step_fn, donate_argnums=0)
    for step, batch in enumerate(batches):
        states, m = step_fn(states, batch, seeds_lib.step_keys(rngs, step))
    jax.block_until_ready(m)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--preset", help="a preset whose own data is generated (dates, copy, ...)")
    group.add_argument("--shape", choices=("lstm", "attention"), help="a reference shape on random batches")
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--length", type=int, default=20)
    p.add_argument("--vocab", type=int, default=8000)
    args = p.parse_args()
    cfg, batches = batches_of(args)
    cfg = resolve_dtype(cfg)
    seeds = list(range(args.seeds))
    times = {"one_after_another": [], "together": []}
    for _ in range(args.rounds):  # alternating, so drifts of the machine hit both
        times["one_after_another"].append(one_after_another(cfg, batches, seeds))
        times["together"].append(together(cfg, batches, seeds))
    med = {k: float(np.median(v)) for k, v in times.items()}
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), platform.processor())
    print(json.dumps({"workload": args.preset or f"{args.shape} batch {args.batch} length {args.length}",
                      "seeds": args.seeds, "steps": args.steps, "rounds": args.rounds, "cpu": cpu,
                      "device": jax.devices()[0].platform, "dtype": cfg.model.dtype,
                      "seconds_median": {k: round(v, 2) for k, v in med.items()},
                      "seconds_each_round": {k: [round(x, 2) for x in v] for k, v in times.items()},
                      "speedup_together": round(med["one_after_another"] / med["together"], 2)}))


if __name__ == "__main__":
    reexec_with_huge_pages()
    main()
