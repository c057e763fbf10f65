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

from s2s_jax.cli import parse_config
from s2s_jax.loop import run
from s2s_jax.plots import attention_examples
from s2s_jax.programs import start_program
from s2s_jax.summary import read_metrics


def main(argv: list[str] | None = None) -> None:
    def add(p: argparse.ArgumentParser) -> None:
        p.add_argument("--workdir", default="runs/dates")
        p.add_argument("--examples", type=int, default=6)

    args, cfg = parse_config("quickstart", __doc__, argv, add)
    t0 = time.perf_counter()
    result = run(cfg, args.workdir)
    minutes = (time.perf_counter() - t0) / 60
    test = [m for m in read_metrics(args.workdir) if m["split"] == "test"][-1]

    examples = attention_examples(result.state, result.data.splits["test"], result.data.src_tokenizer,
                                  result.data.tgt_tokenizer, range(args.examples))
    print(f"\n{'source':32s} {'output':12s} reference")
    for ex in examples:
        mark = "" if ex.output == ex.reference else "   <- wrong"
        print(f"{ex.source:32s} {ex.output:12s} {ex.reference}{mark}")
    path = os.path.join(args.workdir, "attention.png")
    examples[0].heatmap(path=path)
    summary = {"test_exact_match": test["exact_match"], "test_examples": test["examples"],
               "steps": int(result.state.step), "minutes_this_invocation": round(minutes, 2), "heatmap": path}
    print("\n" + json.dumps(summary))
    if test["exact_match"] < 0.99:
        print("quickstart: the test exact match is below 99%.", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    start_program()
    main()
