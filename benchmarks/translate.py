"""Decoding speed on real data: a trained run (``--workdir``) translates a split of its data with
greedy decoding and beam search through :class:`s2s_jax.Translator` (length-sorted batches of
``data.eval_batch_size``), as ``s2s-translate`` does. The first pass of each setting compiles;
the median of the timed passes after it is reported. Prints one JSON object.

    python -m benchmarks.translate --workdir runs/multi30k --split test2016 --beam-sizes 1 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax

from s2s_jax.checkpoint import saved_config
from s2s_jax.data.dataset import prepare_data
from s2s_jax.evaluation import split_role
from s2s_jax.hugepages import reexec_with_huge_pages
from s2s_jax.translator import Translator


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--checkpoint", default="best")
    p.add_argument("--beam-sizes", type=int, nargs="+", default=[1, 5])
    p.add_argument("--rounds", type=int, default=2, help="timed passes after the compiling one")
    a = p.parse_args()
    cfg = saved_config(a.workdir)
    if cfg is None:
        raise SystemExit(f"translate.py: error: {a.workdir} holds no config.json; it is not a training workdir.")
    role = split_role(cfg.data, a.split)
    sources = prepare_data(cfg, a.workdir, splits=(role,)).splits[role].raw_src
    translator = Translator.from_workdir(a.workdir, a.checkpoint)
    out = {"workdir": a.workdir, "split": a.split, "sentences": len(sources), "step": translator.step,
           "device": str(jax.devices()[0]), "jax": jax.__version__}
    for beam in a.beam_sizes:
        t0 = time.perf_counter()
        translator.translate(sources, beam_size=beam)
        first = time.perf_counter() - t0
        times = []
        for _ in range(a.rounds):
            t0 = time.perf_counter()
            translator.translate(sources, beam_size=beam)
            times.append(time.perf_counter() - t0)
        name = "greedy" if beam == 1 else f"beam{beam}"
        out[name] = {"first_pass_s": round(first, 2),
                     "sentences_per_s": round(len(sources) / statistics.median(times), 1),
                     "timed_passes_s": [round(t, 2) for t in times]}
    print(json.dumps(out))


if __name__ == "__main__":
    reexec_with_huge_pages()
    main()
