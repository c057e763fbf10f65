"""The run's record: ``metrics.jsonl``, one JSON object per line
(``step``, ``split`` and the metrics), appended as training goes."""

from __future__ import annotations

import json
import math
import os
from typing import Any

from s2s_jax.fileio import atomic_open

METRICS_FILE = "metrics.jsonl"


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/Inf
    return value


def read_metrics(workdir: str) -> list[dict[str, Any]]:
    path = os.path.join(workdir, METRICS_FILE)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class MetricsWriter:
    """Appends to ``workdir/metrics.jsonl``; only one process of a run writes."""

    def __init__(self, workdir: str, enabled: bool = True):
        self.path = os.path.join(workdir, METRICS_FILE)
        self.enabled = enabled

    def truncate_after(self, step: int) -> None:
        """Drop records past ``step``: a resumed run recomputes them."""
        if not self.enabled or not os.path.exists(self.path):
            return
        kept = [r for r in read_metrics(os.path.dirname(self.path)) if r.get("step", 0) <= step]
        with atomic_open(self.path) as f:
            f.writelines(json.dumps(r) + "\n" for r in kept)

    def write(self, step: int, split: str, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"step": int(step), "split": split, **{k: _clean(v) for k, v in metrics.items()}}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
