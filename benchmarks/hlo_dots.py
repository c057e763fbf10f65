"""Where the training step's matmuls run: every dot of the compiled (optimised) HLO of
``train_step`` on a reference shape, with its operand and result dtypes, its
[m, k] x [k, n] sizes, the number of times it runs per step (inside the time loops:
once per step of the loop), and whether XLA:CPU handed it to YNNPACK (the library
that drives the matrix units) or to its own kernels (Eigen / LLVM IR). Converts
around dots are counted too.

    python -m benchmarks.hlo_dots --model attention --dtype bfloat16 [--src-len 24 --tgt-len 24]

Prints one JSON object: per (library, operand dtype) the number of dots and their
share of the step's matmul FLOPs, and the largest dots one by one.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict

import jax

from benchmarks.shapes import random_batch, shape_config
from s2s_jax.training.step import create_train_state, train_step

_SHAPE = re.compile(r"(\w+)\[([\d,]*)\]")
_DOT = re.compile(r"%(\S+) = (\w+\[[\d,]*\])\S* dot\(%(\S+), %(\S+)\), (.*)")
_PARAM = re.compile(r"%(\S+) = (\w+\[[\d,]*\])\S* parameter\((\d+)\)")


def _dims(shape: str) -> tuple[str, list[int]]:
    dtype, dims = _SHAPE.match(shape).groups()
    return dtype, [int(d) for d in dims.split(",") if d]


def _computations(hlo: str) -> dict[str, list[str]]:
    comps, name = {}, None
    for line in hlo.splitlines():
        m = re.match(r"^(?:ENTRY )?%(\S+) .*\{$", line)
        if m:
            name = m.group(1)
            comps[name] = []
        elif name is not None:
            comps[name].append(line.strip())
    return comps


def inventory(hlo: str, trip_count: int) -> list[dict]:
    """The dots of optimised HLO text: one dict each. A dot inside a while loop's body is
    counted ``trip_count`` times (the loops of a step all run over the time steps)."""
    comps = _computations(hlo)
    in_loop = set()
    for lines in comps.values():
        for line in lines:
            body = re.search(r"body=%(\S+?)[,\s]", line)
            if " while(" in line and body:
                in_loop.add(body.group(1))
    calls = defaultdict(set)  # computation -> computations it calls
    ynn_bodies = set()
    for comp, lines in comps.items():
        for line in lines:
            for callee in re.findall(r"(?:calls|body|condition|to_apply)=%([\w.\-]+)", line):
                calls[comp].add(callee)
                if '"__ynn_fusion"' in line:
                    ynn_bodies.add(callee)
    loop_comps = set(in_loop)
    frontier = list(in_loop)
    while frontier:
        for callee in calls[frontier.pop()]:
            if callee not in loop_comps:
                loop_comps.add(callee)
                frontier.append(callee)
    dots = []
    for comp, lines in comps.items():
        shapes = {}
        for line in lines:
            m = _PARAM.match(line) or re.match(r"%(\S+) = (\w+\[[\d,]*\])", line)
            if m:
                shapes[m.group(1)] = m.group(2)
        for line in lines:
            m = _DOT.search(line)
            if not m:
                continue
            _, out, lhs, rhs, attrs = m.groups()
            out_t, out_d = _dims(out)
            lhs_t, lhs_d = _dims(shapes[lhs])
            rhs_t, _ = _dims(shapes[rhs])
            lc = [int(d) for d in re.search(r"lhs_contracting_dims=\{([\d,]*)\}", attrs).group(1).split(",") if d]
            lb = [int(d) for d in (re.search(r"lhs_batch_dims=\{([\d,]*)\}", attrs) or re.match("()", "")).group(1)
                  .split(",") if d]
            k = 1
            for d in lc:
                k *= lhs_d[d]
            batch = 1
            for d in lb:
                batch *= lhs_d[d]
            size = 1
            for d in out_d:
                size *= d
            mn = size // max(batch, 1)
            m_rows = 1
            for i, d in enumerate(lhs_d):
                if i not in lc and i not in lb:
                    m_rows *= d
            times = trip_count if comp in loop_comps else 1
            dots.append({"where": "ynnpack" if comp in ynn_bodies else "xla", "operands": f"{lhs_t}x{rhs_t}",
                         "result": out_t, "batch": batch, "m": m_rows, "k": k, "n": mn // max(m_rows, 1),
                         "lhs_contracting": lc, "in_loop": comp in loop_comps, "times_per_step": times,
                         "gflop_per_step": round(2.0 * size * k * times / 1e9, 3)})
    return dots


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["lstm", "attention"], default="attention")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--src-len", type=int, default=24)
    p.add_argument("--tgt-len", type=int, default=24)
    p.add_argument("--vocab", type=int, default=8000)
    p.add_argument("--top", type=int, default=12)
    a = p.parse_args()
    cfg = shape_config(a.model, a.vocab, a.batch, max(a.src_len, a.tgt_len), dtype=a.dtype)
    state = create_train_state(cfg, jax.random.key(0))
    batch = random_batch(a.batch, a.src_len, a.tgt_len, a.vocab)
    hlo = train_step.lower(state, batch, jax.random.key(1)).compile().as_text()
    dots = inventory(hlo, max(a.src_len, a.tgt_len))
    total = sum(d["gflop_per_step"] for d in dots)
    groups: dict = defaultdict(lambda: {"dots": 0, "gflop_per_step": 0.0})
    for d in dots:
        g = groups[f"{d['where']} {d['operands']}->{d['result']}"]
        g["dots"] += 1
        g["gflop_per_step"] += d["gflop_per_step"]
    converts = len(re.findall(r" convert\(", hlo))
    print(json.dumps({
        "model": a.model, "dtype": a.dtype, "dots": len(dots), "gflop_per_step": round(total, 1),
        "converts": converts,
        "by_library": {k: {"dots": v["dots"], "share_of_flops": round(v["gflop_per_step"] / total, 3)}
                       for k, v in sorted(groups.items())},
        "largest": sorted(dots, key=lambda d: -d["gflop_per_step"])[:a.top],
    }, indent=1))


if __name__ == "__main__":
    main()
