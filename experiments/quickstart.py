"""The quickstart (``make demo``): train the ``dates`` preset, report the test
exact match, print a few conversions and save an attention heatmap.

    python experiments/quickstart.py [--workdir runs/dates] [s2s-train flags...]

A workdir that already holds the finished run is reused, not retrained.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

import s2s_jax as s2s
from s2s_jax.cli import parse_config
from s2s_jax.plots import attention_heatmap
from s2s_jax.summary import read_metrics
from s2s_jax.training.loop import run


def main(argv: list[str] | None = None) -> None:
    def add(p: argparse.ArgumentParser) -> None:
        p.add_argument("--workdir", default="runs/dates")
        p.add_argument("--examples", type=int, default=6)

    args, cfg = parse_config("quickstart", __doc__, argv, add)
    t0 = time.perf_counter()
    result = run(cfg, args.workdir)
    minutes = (time.perf_counter() - t0) / 60
    test = [m for m in read_metrics(args.workdir) if m["split"] == "test"][-1]

    split = result.data.splits["test"]
    state, tok_src, tok_tgt = result.state, result.data.src_tokenizer, result.data.tgt_tokenizer
    rows = list(range(args.examples))
    src = np.zeros((len(rows), max(len(split.src[i]) for i in rows)), np.int32)
    for r, i in enumerate(rows):
        src[r, :len(split.src[i])] = split.src[i]
    tokens, attention = s2s.greedy_decode(state.model, state.params, src, result.data.config.decode.max_len_b,
                                          return_attention=True)
    tokens, attention = np.asarray(tokens), np.asarray(attention)
    print(f"\n{'source':32s} {'output':12s} reference")
    for r, i in enumerate(rows):
        hyp = tok_tgt.decode(tokens[r])
        mark = "" if hyp == split.raw_tgt[i] else "   <- wrong"
        print(f"{split.raw_src[i]:32s} {hyp:12s} {split.raw_tgt[i]}{mark}")

    out_len = int(np.argmax(tokens[0] == s2s.EOS_ID)) + 1
    path = os.path.join(args.workdir, "attention.png")
    attention_heatmap(attention[0], tok_src.pieces(split.src[rows[0]]), tok_tgt.pieces(tokens[0][:out_len]),
                      title=split.raw_src[rows[0]], path=path)
    summary = {"test_exact_match": test["exact_match"], "test_examples": test["examples"],
               "steps": int(state.step), "minutes_this_invocation": round(minutes, 2), "heatmap": path}
    print("\n" + json.dumps(summary))
    if test["exact_match"] < 0.99:
        print("quickstart: the test exact match is below 99%.", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
