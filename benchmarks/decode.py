#!/usr/bin/env python3
"""Decoding speed: sentences/s of greedy decoding and beam search beside the PyTorch
reference's greedy decoding, on the attention model shape of ``torch_reference.py``
(bidirectional GRU encoder, additive Bahdanau attention, GRU decoder).

Like the reference, every sentence decodes exactly ``--tgt-len`` tokens (min_len =
max_len), so the runs do the same number of steps whatever the random weights say.
JAX and PyTorch rounds alternate, so a busy machine slows both alike. As the reference times
its call right after an untimed one in its process, each round times a JAX call right after an
untimed one (the first call after the reference's process would otherwise run cold). The first JAX
call (compilation and one run) is reported separately, and the compilation time as
that call less a run's median time. The weights are rounded to the model's dtype once, as
the Translator and evaluation do (``decoding_params``, which also makes the per-token tables;
its first call, compilation included, is reported). This program runs with tuned
malloc (``s2s_jax.hugepages``: huge pages, freed buffers kept); the reference runs in each of
``--torch-envs``: ``default`` (as a PyTorch user starts it, without the tunables) and
``huge-pages`` (with them, as this side runs), so the ratios say what the allocator setting
gives each side. Prints one JSON object.

    python -m benchmarks.decode --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np

from benchmarks.shapes import shape_config
from s2s_jax.decoding import beam_search, greedy_decode
from s2s_jax.hugepages import describe as describe_host_memory
from s2s_jax.hugepages import (
    glibc_version,
    huge_page_environ,
    reexec_with_huge_pages,
    thp_mode,
    without_malloc_tunables,
)
from s2s_jax.models.seq2seq import Seq2Seq, decoding_params
from s2s_jax.precision import auto_dtype

REPO = Path(__file__).resolve().parents[1]
TORCH_REFERENCE = REPO.parent / "shared" / "bench" / "torch_reference.py"
TORCH_ENVS = ("default", "huge-pages")  # the reference's malloc: as a user starts it, or as this side runs


def machine_dtypes() -> list[str]:
    """The precisions worth timing here, the fastest first: ``model.dtype="auto"``'s choice, then
    the other one where that is bfloat16. On a CPU without bfloat16 units PyTorch's autocast is no
    peer: its LSTM raises (oneDNN has no primitive for it) and its attention step runs some 100
    times slower than in float32 (BENCHMARKS.md, "An AMD EPYC Zen 3")."""
    return ["bfloat16", "float32"] if auto_dtype()[0] == "bfloat16" else ["float32"]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5, help="timed rounds of each program")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--src-len", type=int, default=24)
    p.add_argument("--tgt-len", type=int, default=24, help="decoded tokens per sentence")
    p.add_argument("--vocab", type=int, default=8000)
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument("--torch-reference", type=Path, default=TORCH_REFERENCE,
                   help="the PyTorch reference script (default: ../shared/bench/torch_reference.py from the repo)")
    p.add_argument("--torch-threads", type=int, default=2)
    p.add_argument("--no-torch", action="store_true", help="time the JAX side only")
    here = machine_dtypes()
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default=here[0],
                   help="the JAX model's dtype (default: the fastest here)")
    p.add_argument("--torch-dtypes", nargs="+", choices=["float32", "bfloat16"], default=here[::-1],
                   help="the PyTorch reference's precisions (bfloat16: torch.autocast), each timed every round "
                        "(default: float32, and bfloat16 where the CPU has bfloat16 units)")
    p.add_argument("--torch-envs", nargs="+", choices=list(TORCH_ENVS), default=list(TORCH_ENVS),
                   help="the reference's malloc: default (4 KiB pages unless the kernel's mode is always) "
                        "and/or huge-pages (this side's malloc tunables, s2s_jax.hugepages: huge pages, "
                        "freed buffers kept)")
    return p.parse_args()


def torch_variant(dtype: str, env: str) -> str:
    """The name of a reference run's precision and malloc in the JSON keys: ``bfloat16``,
    ``bfloat16_huge_pages``."""
    return dtype if env == "default" else f"{dtype}_{env.replace('-', '_')}"


def last_json(cmd: list[str], env: dict[str, str] | None = None) -> dict:
    """The last line of the program ``cmd``'s standard output, a JSON object; a program that fails
    ends this one with the last line it wrote to standard error."""
    run = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["(nothing on standard error)"])[-1]
        sys.exit(f"{Path(sys.argv[0]).name}: error: {' '.join(cmd[1:])} exited with status {run.returncode}: {last}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def run_torch(cmd: list[str], env: str) -> dict:
    """:func:`last_json` of the reference run ``cmd`` with the malloc setting ``env`` (one of
    :data:`TORCH_ENVS`): ``huge-pages`` gives it the tunables this side re-executes with."""
    plain = without_malloc_tunables(os.environ)
    tuned = huge_page_environ(plain, thp_mode(), glibc_version()) if env == "huge-pages" else None
    return last_json(cmd, tuned or plain)


def spread(values: list[float]) -> dict[str, float]:
    return {"min": round(min(values), 1), "median": round(statistics.median(values), 1),
            "max": round(max(values), 1)}


def timed(fn) -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t0


def torch_round(a: argparse.Namespace, dtype: str, env: str) -> dict:
    """One run of the reference script; it times one greedy batch after a warm-up (and trains first)."""
    cmd = [sys.executable, str(a.torch_reference), "--model", "attention", "--threads", str(a.torch_threads),
           "--batch", str(a.batch), "--src-len", str(a.src_len), "--tgt-len", str(a.tgt_len),
           "--vocab", str(a.vocab), "--steps", "1", "--dtype", dtype]
    return run_torch(cmd, env)


def main() -> None:
    a = parse_args()
    if not a.no_torch and not a.torch_reference.is_file():
        sys.exit(f"decode.py: error: the PyTorch reference {a.torch_reference} does not exist; "
                 "pass --torch-reference or --no-torch.")
    model = Seq2Seq(shape_config("attention", a.vocab, a.batch, a.src_len, dtype=a.dtype).model)
    rng = np.random.default_rng(0)
    src = rng.integers(4, a.vocab, (a.batch, a.src_len)).astype(np.int32)
    params = jax.jit(model.init)(jax.random.key(0), src, src[:, :a.tgt_len])["params"]
    t0 = time.perf_counter()
    params = jax.block_until_ready(decoding_params(model, params))  # compiled and run once, as a Translator does
    prepare_s = time.perf_counter() - t0
    length = dict(max_len=a.tgt_len, min_len=a.tgt_len)
    programs = {
        "greedy": lambda: greedy_decode(model, params, src, **length),
        f"beam{a.beam_size}": lambda: beam_search(model, params, src, beam_size=a.beam_size, **length),
    }
    first_call = {name: round(timed(fn), 2) for name, fn in programs.items()}
    speeds: dict[str, list[float]] = {name: [] for name in programs}
    variants = [] if a.no_torch else [(d, e) for d in a.torch_dtypes for e in a.torch_envs]
    torch_speeds: dict[str, list[float]] = {torch_variant(d, e): [] for d, e in variants}
    torch_info: dict = {}
    for _ in range(a.rounds):
        for name, fn in programs.items():
            jax.block_until_ready(fn())  # the reference, too, times a call right after an untimed one
            speeds[name].append(a.batch / timed(fn))
        for d, e in variants:
            torch_info = torch_round(a, d, e)
            torch_speeds[torch_variant(d, e)].append(torch_info["greedy_sentences_per_s"])

    result = {
        "model": "attention (gru, bidirectional, additive bahdanau)", "dtype": a.dtype,
        "host_memory": describe_host_memory(),
        "batch": a.batch, "src_len": a.src_len, "tgt_len": a.tgt_len, "vocab": a.vocab, "rounds": a.rounds,
        "jax": {"version": jax.__version__, "device": str(jax.devices()[0]),
                "decoding_params_s": round(prepare_s, 2), "first_call_s": first_call,
                # the first call compiles and runs once: less one run's median time, the compilation
                "compile_s": {name: round(first_call[name] - a.batch / statistics.median(v), 2)
                              for name, v in speeds.items()},
                "sentences_per_s": {name: spread(v) for name, v in speeds.items()}},
    }
    for d, runs in torch_speeds.items():
        torch_median = statistics.median(runs)
        result[f"torch_{d}"] = {"impl": torch_info["impl"], "threads": torch_info["threads"],
                                "greedy_sentences_per_s": spread(runs)}
        result[f"ratio_vs_torch_{d}_greedy"] = {name: round(statistics.median(v) / torch_median, 2)
                                                for name, v in speeds.items()}
    print(json.dumps(result))


if __name__ == "__main__":
    reexec_with_huge_pages()
    main()
