"""s2s_jax beside the PyTorch reference (``make bench``): training throughput of the
``lstm`` and ``attention`` shapes and greedy / beam decoding, rounds alternating between
the two sides so a busy machine slows both alike. Each round is a fresh process on each
side (``benchmarks.train`` and ``torch_reference.py`` with the same shape and steps);
the ratio of a round is JAX tokens/s over PyTorch tokens/s of that round. Prints one JSON
object: per shape the ratios' min/median/max and both sides' figures, then the decoding
benchmark's (``benchmarks.decode``).

    python -m benchmarks.compare [--rounds 3] [--steps 5] [--models lstm attention] [--ablate-recurrence]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.decode import TORCH_REFERENCE


def spread(values: list[float], digits: int = 2) -> dict[str, float]:
    return {"min": round(min(values), digits), "median": round(statistics.median(values), digits),
            "max": round(max(values), digits)}


def last_json(cmd: list[str]) -> dict:
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=5, help="timed training steps per process (median taken)")
    p.add_argument("--models", nargs="+", choices=["lstm", "attention"], default=["lstm", "attention"])
    p.add_argument("--torch-reference", type=Path, default=TORCH_REFERENCE)
    p.add_argument("--torch-threads", type=int, default=2)
    p.add_argument("--no-decode", action="store_true")
    p.add_argument("--ablate-recurrence", action="store_true",
                   help="also time JAX with autodiff through the recurrent scans (benchmarks.train "
                        "--autodiff-recurrence) and report the hand-written backward pass's speedup")
    a = p.parse_args()
    if not a.torch_reference.is_file():
        sys.exit(f"compare.py: error: the PyTorch reference {a.torch_reference} does not exist; "
                 "pass --torch-reference.")

    result: dict = {"rounds": a.rounds, "steps": a.steps, "training": {}}
    for model in a.models:
        shape = ["--model", model, "--steps", str(a.steps)]
        jax_runs, torch_runs, autodiff_runs = [], [], []
        for _ in range(a.rounds):
            jax_runs.append(last_json([sys.executable, "-m", "benchmarks.train", *shape]))
            if a.ablate_recurrence:
                autodiff_runs.append(last_json([sys.executable, "-m", "benchmarks.train", *shape,
                                                "--autodiff-recurrence"]))
            torch_runs.append(last_json([sys.executable, str(a.torch_reference), *shape,
                                         "--threads", str(a.torch_threads)]))
        ratios = [j["train_tgt_tokens_per_s"] / t["train_tgt_tokens_per_s"]
                  for j, t in zip(jax_runs, torch_runs, strict=True)]
        result["training"][model] = {
            "ratio_tokens_per_s": spread(ratios),
            "jax_tokens_per_s": spread([j["train_tgt_tokens_per_s"] for j in jax_runs], 1),
            "torch_tokens_per_s": spread([t["train_tgt_tokens_per_s"] for t in torch_runs], 1),
            "jax_first_step_compile_s": spread([j["first_step_compile_s"] for j in jax_runs]),
            "jax_peak_host_memory_mb": max(j["peak_host_memory_mb"] for j in jax_runs),
            "jax_utilisation": spread([j["utilisation"] for j in jax_runs], 3),
            "jax": jax_runs[-1]["impl"], "torch": torch_runs[-1]["impl"], "params": jax_runs[-1]["params"],
            "torch_params": torch_runs[-1]["params"],
        }
        if autodiff_runs:
            result["training"][model]["speedup_over_autodiff_recurrence"] = spread(
                [j["train_tgt_tokens_per_s"] / d["train_tgt_tokens_per_s"]
                 for j, d in zip(jax_runs, autodiff_runs, strict=True)])
        print(json.dumps({model: result["training"][model]}), file=sys.stderr)
    if not a.no_decode:
        result["decoding"] = last_json([sys.executable, "-m", "benchmarks.decode", "--rounds", str(a.rounds),
                                        "--torch-reference", str(a.torch_reference),
                                        "--torch-threads", str(a.torch_threads)])
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
