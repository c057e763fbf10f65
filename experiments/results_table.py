"""The tables of EXPERIMENTS.md from the runners' ``result.json`` files.

    python experiments/results_table.py runs/paper_dates [--compare RUN_A RUN_B ...]

Prints one markdown row per run under the directory, its seeds pooled (those of a many-seed run,
``RUN/seed_N``, or of separate runs ``RUN_seedN``): the mean and, with several seeds, the sample
standard deviation and the 95% confidence interval of the mean (Student's t), and the
per-seed values for up to three seeds. ``--compare A B`` adds, for each column, Welch's
two-sided t-test of the difference between runs A and B (``s2s_jax.significance``).
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

from s2s_jax.significance import summarize, welch

COLUMNS = [("test_exact_match_greedy", "exact match, greedy", 100.0), ("test_exact_match_beam5", "beam 5", 100.0),
           ("test_bleu_greedy", "BLEU greedy", 1.0), ("test_bleu_beam5", "beam 5", 1.0)]


def cell(values: list[float]) -> str:
    s = summarize(values)
    if s.n == 1:
        return f"{s.mean:.2f}"
    each = f" ({' / '.join(f'{v:.1f}' for v in values)})" if s.n <= 3 else ""
    return f"{s.mean:.2f} ± {s.sd:.2f} [{s.ci_low:.2f}, {s.ci_high:.2f}]{each}"


def runs(root: str) -> dict[str, list[dict]]:
    """Run name -> its seeds' result rows."""
    groups: dict[str, list[dict]] = defaultdict(list)
    paths = glob.glob(os.path.join(root, "*", "result.json")) + glob.glob(os.path.join(root, "*", "seed_*",
                                                                                       "result.json"))
    for path in sorted(paths, key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p)]):
        parent = os.path.dirname(path)
        if re.fullmatch(r"seed_\d+", os.path.basename(parent)):
            name = os.path.basename(os.path.dirname(parent))
        else:
            name = re.sub(r"_seed\d+$", "", os.path.basename(parent))
        with open(path, encoding="utf-8") as f:
            groups[name].append(json.load(f))
    return groups


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="the directory holding the workdirs")
    p.add_argument("--bleu-only", action="store_true", help="no exact-match columns")
    p.add_argument("--compare", nargs=2, action="append", default=[], metavar=("RUN_A", "RUN_B"),
                   help="Welch's t-test of RUN_A against RUN_B, per column (repeatable)")
    args = p.parse_args()
    columns = [c for c in COLUMNS if not (args.bleu_only and c[0].startswith("test_exact_match"))]
    groups = runs(args.root)
    print("| run | seeds | steps | train min | " + " | ".join(title for _, title, _ in columns) + " | params |")
    print("| --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in columns) + " | ---: |")
    for name, rows in groups.items():
        minutes = statistics.mean(r["train_minutes"] for r in rows)
        cells = [cell([r[key] * scale for r in rows]) for key, _, scale in columns]
        print(f"| {name} | {len(rows)} | {rows[0]['steps']} | {minutes:.1f} | " + " | ".join(cells)
              + f" | {rows[0]['params']:,} |")
    if args.compare:
        print("\n| A vs B | column | mean A − mean B | Welch t | dof | p (two-sided) | outside the noise at 5% |")
        print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for a, b in args.compare:
        for key, _, scale in columns:
            c = welch([r[key] * scale for r in groups[a]], [r[key] * scale for r in groups[b]])
            print(f"| {a} vs {b} | {key} | {c.difference:+.2f} | {c.t:.2f} | {c.dof:.1f} | {c.p:.3g} | "
                  f"{'yes' if c.p < 0.05 else 'no'} |")


if __name__ == "__main__":
    main()
