"""The runner shared by the paper scripts (``sutskever2014.py``, ``cho2014.py``, ...):
train a paper's preset, then score the test split with greedy decoding and beam 5.

    python experiments/PAPER.py [--data DIR] [--workdir W] [--seeds 0 1 2] [s2s-train flags...]

Without ``--data`` the preset runs on the embedded dates task (minutes on a CPU). With
``--data DIR`` (parallel text such as ``../shared/data/multi30k``, or a TFDS name) it runs the
preset's Multi30k-scale twin on that data; ``--data.splits``, ``--data.src-lang`` and the
other flags still apply. Every config field is a flag (``--help`` lists them), so an ablation
is a flag: ``--model.reverse-source false``. A workdir that holds a finished run is reused.

``--seeds`` trains the seeds together in one program (``train.seeds``), each in
``WORKDIR/seed_N``. Prints one JSON line per seed (the rows of EXPERIMENTS.md) and writes it to
the seed's ``result.json`` (``WORKDIR/result.json`` for a single seed).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time

import jax
import numpy as np

from s2s_jax.cli import parse_config
from s2s_jax.evaluation import evaluate_workdir
from s2s_jax.fileio import atomic_write_text
from s2s_jax.loop import run
from s2s_jax.seeds import seed_dir
from s2s_jax.summary import read_metrics


def _data_option(argv: list[str]) -> tuple[str | None, list[str]]:
    """``--data DIR`` taken out of argv (it picks the preset, so it is read first)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--data")
    known, rest = p.parse_known_args(argv)
    return known.data, rest


def main(preset: str, doc: str, argv: list[str] | None = None) -> list[dict]:
    argv = list(sys.argv[1:] if argv is None else argv)
    data, rest = _data_option(argv)
    name = f"{preset}_multi30k" if data else preset
    if data:
        rest = ["--data.source", data, *rest]

    def add(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data", help="parallel text directory or TFDS name: run the Multi30k-scale preset on it")
        p.add_argument("--workdir", default=None, help=f"default: runs/{name}[_seedN]")
        p.add_argument("--seeds", type=int, nargs="+", default=None,
                       help="train these seeds in one program (train.seeds; default: train.seed alone)")
        p.add_argument("--beam-size", type=int, default=5, help="the beam of the second test decoding")
        p.add_argument("--checkpoint", default="best", help="the checkpoint scored: best, latest or a step")

    args, cfg = parse_config(os.path.basename(sys.argv[0]), doc, rest, add, default_preset=name)
    seeds = args.seeds or [cfg.train.seed]
    if len(seeds) > 1:
        cfg = cfg.replace(train={"seeds": tuple(seeds)})
    workdir = args.workdir or f"runs/{cfg.name}"
    t0 = time.perf_counter()
    result = run(cfg, workdir)
    minutes = (time.perf_counter() - t0) / 60
    params = jax.tree_util.tree_leaves(result.state.params)
    rows = []
    for seed in seeds:
        seed_workdir = seed_dir(workdir, seed) if len(seeds) > 1 else workdir
        timed = [m["minutes"] for m in read_metrics(seed_workdir) if "minutes" in m]
        row = {"preset": cfg.name, "seed": seed, "workdir": seed_workdir, "steps": int(np.max(result.state.step)),
               "params": sum(int(x[0].size if len(seeds) > 1 else x.size) for x in params),
               "seeds_in_program": len(seeds), "train_minutes": round(timed[-1], 1) if timed else None,
               "minutes_this_invocation": round(minutes, 1),
               "command": shlex.join(["python", sys.argv[0], *argv])}
        for beam in (1, args.beam_size):
            scores = evaluate_workdir(seed_workdir, "test", args.checkpoint, beam_size=beam)
            tag = "greedy" if beam == 1 else f"beam{beam}"
            row[f"test_bleu_{tag}"] = round(scores["bleu"], 2)
            row[f"test_exact_match_{tag}"] = round(scores["exact_match"], 4)
            row["test_split"] = scores["split_name"]
            row["bleu_signature"] = scores["bleu_signature"]
        atomic_write_text(os.path.join(seed_workdir, "result.json"), json.dumps(row, indent=1) + "\n")
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows
