"""The tables of EXPERIMENTS.md from the runners' ``result.json`` files.

    python experiments/results_table.py runs/paper_dates

Prints one markdown row per workdir under the directory, the seeds of a run (``NAME_seedN``)
pooled into one row: mean and, with several seeds, the standard deviation and the per-seed values.
``--bleu-only`` leaves out the exact-match columns (for translation, where they are near zero).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import statistics
from collections import defaultdict

COLUMNS = [("test_exact_match_greedy", "exact match, greedy", 100.0), ("test_exact_match_beam5", "beam 5", 100.0),
           ("test_bleu_greedy", "BLEU greedy", 1.0), ("test_bleu_beam5", "beam 5", 1.0)]


def cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    each = " / ".join(f"{v:.1f}" for v in values)
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f} ({each})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="the directory holding the workdirs")
    p.add_argument("--bleu-only", action="store_true", help="no exact-match columns")
    args = p.parse_args()
    columns = [c for c in COLUMNS if not (args.bleu_only and c[0].startswith("test_exact_match"))]
    groups: dict[str, list[dict]] = defaultdict(list)
    for path in sorted(glob.glob(os.path.join(args.root, "*", "result.json"))):
        name = re.sub(r"_seed\d+$", "", os.path.basename(os.path.dirname(path)))
        with open(path) as f:
            groups[name].append(json.load(f))
    print("| run | seeds | steps | train min | " + " | ".join(title for _, title, _ in columns) + " | params |")
    print("| --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in columns) + " | ---: |")
    for name, rows in groups.items():
        minutes = statistics.mean(r["train_minutes"] for r in rows)
        cells = [cell([r[key] * scale for r in rows]) for key, _, scale in columns]
        print(f"| {name} | {len(rows)} | {rows[0]['steps']} | {minutes:.1f} | " + " | ".join(cells)
              + f" | {rows[0]['params']:,} |")


if __name__ == "__main__":
    main()
