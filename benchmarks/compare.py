"""s2s_jax beside the PyTorch reference (``make bench``): training throughput of the
``lstm`` and ``attention`` shapes and greedy / beam decoding, rounds alternating between
the two sides so a busy machine slows both alike. Each round is a fresh process on each
side (``benchmarks.train`` and ``torch_reference.py`` with the same shape and steps);
the ratio of a round is JAX tokens/s over PyTorch tokens/s of that round. The JAX side runs
with tuned malloc (``s2s_jax.hugepages``: huge pages, freed buffers kept); the reference runs
in each of ``--torch-envs`` (``default``: as a PyTorch user starts it; ``huge-pages``: with the
same malloc tunables; keys
``..._huge_pages``). Prints one JSON object: per shape the ratios' min/median/max and both
sides' figures, then the decoding benchmark's (``benchmarks.decode``).

    python -m benchmarks.compare [--rounds 3] [--steps 5] [--models lstm attention] [--ablate-recurrence]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from benchmarks.decode import TORCH_ENVS, TORCH_REFERENCE, last_json, machine_dtypes, run_torch, torch_variant
from s2s_jax.hugepages import describe as describe_host_memory
from s2s_jax.hugepages import reexec_with_huge_pages


def spread(values: list[float], digits: int = 2) -> dict[str, float]:
    return {"min": round(min(values), digits), "median": round(statistics.median(values), digits),
            "max": round(max(values), digits)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=5, help="timed training steps per process (median taken)")
    p.add_argument("--models", nargs="+", choices=["lstm", "attention"], default=["lstm", "attention"])
    p.add_argument("--torch-reference", type=Path, default=TORCH_REFERENCE)
    p.add_argument("--torch-threads", type=int, default=2)
    p.add_argument("--no-decode", action="store_true")
    here = machine_dtypes()
    p.add_argument("--dtypes", nargs="+", choices=["float32", "bfloat16"],
                   default=[here[0], "float32" if here[0] == "bfloat16" else "bfloat16"],
                   help="the JAX side's precisions; ratios are of the first (default: bfloat16 and float32, "
                        "the fastest here first)")
    p.add_argument("--torch-dtypes", nargs="+", choices=["float32", "bfloat16"], default=here[::-1],
                   help="the PyTorch reference's precisions (bfloat16: torch.autocast; default: float32, and "
                        "bfloat16 where the CPU has bfloat16 units)")
    p.add_argument("--torch-envs", nargs="+", choices=list(TORCH_ENVS), default=list(TORCH_ENVS),
                   help="the reference's malloc (benchmarks.decode --torch-envs)")
    p.add_argument("--ablate-recurrence", action="store_true",
                   help="also time JAX with autodiff through the recurrent scans (benchmarks.train "
                        "--autodiff-recurrence) and report the hand-written backward pass's speedup")
    a = p.parse_args()
    if not a.torch_reference.is_file():
        sys.exit(f"compare.py: error: the PyTorch reference {a.torch_reference} does not exist; "
                 "pass --torch-reference.")

    result: dict = {"rounds": a.rounds, "steps": a.steps, "jax_dtypes": a.dtypes,
                    "host_memory": describe_host_memory(), "training": {}}
    variants = [(d, e) for d in a.torch_dtypes for e in a.torch_envs]
    for model in a.models:
        shape = ["--model", model, "--steps", str(a.steps)]
        jax_runs: dict[str, list[dict]] = {d: [] for d in a.dtypes}
        torch_runs: dict[str, list[dict]] = {torch_variant(d, e): [] for d, e in variants}
        autodiff_runs = []
        for _ in range(a.rounds):
            for d in a.dtypes:
                jax_runs[d].append(last_json([sys.executable, "-m", "benchmarks.train", *shape, "--dtype", d]))
            if a.ablate_recurrence:
                autodiff_runs.append(last_json([sys.executable, "-m", "benchmarks.train", *shape,
                                                "--dtype", a.dtypes[0], "--autodiff-recurrence"]))
            for d, e in variants:
                torch_runs[torch_variant(d, e)].append(run_torch([sys.executable, str(a.torch_reference), *shape,
                                                                  "--threads", str(a.torch_threads), "--dtype", d], e))
        best = jax_runs[a.dtypes[0]]
        entry: dict = {
            "jax_tokens_per_s": {d: spread([j["train_tgt_tokens_per_s"] for j in runs], 1)
                                 for d, runs in jax_runs.items()},
            "torch_tokens_per_s": {d: spread([t["train_tgt_tokens_per_s"] for t in runs], 1)
                                   for d, runs in torch_runs.items()},
            "jax_first_step_compile_s": spread([j["first_step_compile_s"] for j in best]),
            "jax_peak_host_memory_mb": max(j["peak_host_memory_mb"] for j in best),
            "jax_achieved_gflop_s": spread([j["achieved_gflop_s"] for j in best], 1),
            "machine_matmul_gflop_s": {k: spread([j[f"matmul_gflop_s_{k}"] for j in best], 1)
                                       for k in ("float32", "bfloat16")},
            "fastest_matmul_dtype": best[-1]["fastest_matmul_dtype"],
            "jax_utilisation_of_fastest_rate": spread([j["utilisation"] for j in best], 3),
            "jax": best[-1]["impl"], "params": best[-1]["params"],
        }
        for d, runs in torch_runs.items():
            entry[f"ratio_jax_{a.dtypes[0]}_over_torch_{d}"] = spread(
                [j["train_tgt_tokens_per_s"] / t["train_tgt_tokens_per_s"] for j, t in zip(best, runs, strict=True)])
            entry["torch"] = runs[-1]["impl"]
        if len(a.dtypes) > 1:
            entry[f"ratio_jax_{a.dtypes[0]}_over_jax_{a.dtypes[1]}"] = spread(
                [j["train_tgt_tokens_per_s"] / k["train_tgt_tokens_per_s"]
                 for j, k in zip(best, jax_runs[a.dtypes[1]], strict=True)])
        if autodiff_runs:
            entry["speedup_over_autodiff_recurrence"] = spread(
                [j["train_tgt_tokens_per_s"] / d["train_tgt_tokens_per_s"]
                 for j, d in zip(best, autodiff_runs, strict=True)])
        result["training"][model] = entry
        print(json.dumps({model: entry}), file=sys.stderr)
    if not a.no_decode:
        result["decoding"] = last_json([sys.executable, "-m", "benchmarks.decode", "--rounds", str(a.rounds),
                                        "--dtype", a.dtypes[0], "--torch-dtypes", *a.torch_dtypes,
                                        "--torch-envs", *a.torch_envs,
                                        "--torch-reference", str(a.torch_reference),
                                        "--torch-threads", str(a.torch_threads)])
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    reexec_with_huge_pages()
    main()
