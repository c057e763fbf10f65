#!/usr/bin/env python3
"""What a bucket layout costs a preset's data, counted, not timed: for the training split's
first epoch and each evaluation split, the batches, their distinct shapes (one compiled
program each) and the real tokens over the padded ones, as the pipeline plans them (for
training, the leftover pairs of small bucket pairs moved into the empty rows of larger ones;
for evaluation, the split sorted by length and cut into full batches) and, beside it, with
every pair in its own bucket pair. The step's time grows with its padded length,
so the padded source + target tokens of an epoch are its cost. Prints one JSON object.

    python -m benchmarks.padding --preset multi30k [--bucket-lengths 12 16 20 24 32 64]
"""

from __future__ import annotations

import argparse
import collections
import json
import sys

import numpy as np

from s2s_jax.config import Config
from s2s_jax.data.dataset import TokenizedSplit, prepare_data
from s2s_jax.data.pipeline import PlannedBatch, bucket_index, eval_plan, make_plan, rows_per_batch
from s2s_jax.errors import UserError
from s2s_jax.presets import get_preset


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="multi30k")
    p.add_argument("--bucket-lengths", type=int, nargs="+", help="instead of the preset's")
    p.add_argument("--workdir", help="a run's workdir, to reuse its tokenizers instead of training them")
    return p.parse_args()


def summary(shapes: list[tuple[int, int]], rows: list[int], real: list[int]) -> dict:
    """``shapes[i]`` (source, decoder steps) of batch i with ``rows[i]`` rows and ``real[i]`` pairs."""
    src_pad = sum(r * s for r, (s, _) in zip(rows, shapes, strict=True))
    tgt_pad = sum(r * t for r, (_, t) in zip(rows, shapes, strict=True))
    return {"batches": len(shapes), "shapes": len(set(shapes)), "empty_rows": sum(rows) - sum(real),
            "padded_tokens": src_pad + tgt_pad, "src_pad": src_pad, "tgt_pad": tgt_pad}


def planned(split: TokenizedSplit, plan: list[PlannedBatch]) -> dict:
    out = summary([(p.src_len, p.tgt_len) for p in plan], [len(p.indices) for p in plan],
                  [int(np.sum(p.indices >= 0)) for p in plan])
    return out | ratios(split, out)


def own_buckets(split: TokenizedSplit, cfg: Config, rows: int | None) -> dict:
    """Every pair in its own (smallest) bucket pair, the last batch of each padded with empty rows."""
    buckets = cfg.data.bucket_lengths
    pairs = collections.Counter(zip(bucket_index(split.src_lengths, buckets).tolist(),
                                    bucket_index(split.tgt_lengths + 1, buckets).tolist(), strict=True))
    shapes, batch_rows, real = [], [], []
    for (sb, tb), count in sorted(pairs.items()):
        n = rows or rows_per_batch(cfg.data, buckets[sb], buckets[tb])
        for start in range(0, count, n):
            shapes.append((buckets[sb], buckets[tb]))
            batch_rows.append(n)
            real.append(min(n, count - start))
    out = summary(shapes, batch_rows, real)
    return out | ratios(split, out)


def ratios(split: TokenizedSplit, counts: dict) -> dict:
    return {"real_src_share": round(int(split.src_lengths.sum()) / counts["src_pad"], 4),
            "real_tgt_share": round(int((split.tgt_lengths + 1).sum()) / counts["tgt_pad"], 4)}


def main() -> None:
    args = parse_args()
    try:
        cfg = get_preset(args.preset)
        if args.bucket_lengths:
            cfg = cfg.replace(data={"bucket_lengths": tuple(args.bucket_lengths)})
        data = prepare_data(cfg, args.workdir)
    except UserError as err:
        sys.exit(f"benchmarks.padding: {err}")
    cfg = data.config
    result = {"preset": args.preset, "bucket_lengths": list(cfg.data.bucket_lengths), "splits": {}}
    for name, split in data.splits.items():
        if name == "train":
            plan, rows = make_plan(split, cfg.data, seed=cfg.train.seed, epoch=0), None
        else:
            plan = eval_plan(split, cfg.data)
            rows = len(plan[0].indices)
        result["splits"][name] = {"pipeline": planned(split, plan), "own_bucket_pairs": own_buckets(split, cfg, rows)}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
