"""The run's record and its live views.

``metrics.jsonl`` is the plain-text record: one JSON object per line (``step``,
``split`` and the metrics), appended as training goes. The same numbers go to
TensorBoard event files in ``workdir/tensorboard/<split>/`` (written with
tensorboardX, so TensorFlow is not needed), one run per split so that train and
validation curves of a metric share a chart; evaluations add sample
translations (text) and attention heatmaps (images). ``tensorboard --logdir
WORKDIR`` shows them. Progress bars are :mod:`s2s_jax.progress`'s.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from tensorboardX import SummaryWriter

from s2s_jax.fileio import atomic_open, close_on_exit, read_text, storage_error

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
TRANSLATIONS_TAG = "translations"  # tensorboardX stores text as "<tag>/text_summary"


@contextlib.contextmanager
def _tensorboard_write(logdir: str) -> Iterator[None]:
    """A failed write of TensorBoard events into ``logdir`` (a full disk, a lost permission)
    as one sentence, :class:`s2s_jax.errors.StorageError`."""
    try:
        yield
    except OSError as e:
        raise storage_error("writing TensorBoard events into", logdir, e) from None


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/Inf
    return value


def read_metrics(workdir: str) -> list[dict[str, Any]]:
    path = os.path.join(workdir, METRICS_FILE)
    if not os.path.exists(path):
        return []
    text = read_text(path)
    lines = [line for line in text.split("\n") if line.strip()]
    if lines and not text.endswith("\n"):  # a record cut short by a killed process is left out
        try:
            json.loads(lines[-1])
        except ValueError:
            lines.pop()
    return [json.loads(line) for line in lines]


def figure_to_rgb(fig: Figure) -> np.ndarray:
    """The figure rendered to pixels [height, width, 3] uint8."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()


def examples_markdown(sources: Sequence[str], hypotheses: Sequence[str], references: Sequence[str]) -> str:
    """A Markdown table of sample translations (TensorBoard's text tab renders it)."""

    def cell(text: str) -> str:
        return "`" + text.replace("`", "'").replace("|", "\\|") + "`" if text else "(empty)"

    lines = ["| source | hypothesis | reference |", "|---|---|---|"]
    lines += [f"| {cell(s)} | {cell(h)} | {cell(r)} |" for s, h, r in zip(sources, hypotheses, references, strict=True)]
    return "\n".join(lines)


class MetricsWriter:
    """Appends to ``workdir/metrics.jsonl`` and the TensorBoard event files; only one
    process of a run writes (``enabled``). Use as a context manager, or call :meth:`close`."""

    def __init__(self, workdir: str, enabled: bool = True, tensorboard: bool = True):
        self.workdir = workdir
        self.path = os.path.join(workdir, METRICS_FILE)
        self.enabled = enabled
        self.tensorboard = tensorboard
        self._purge_step: int | None = None
        self._writers: dict[str, SummaryWriter] = {}

    def truncate_after(self, step: int) -> None:
        """Drop records past ``step``: a resumed run recomputes them. Event files keep
        them, but the new event files start with a marker telling TensorBoard to hide
        events from step ``step + 1`` on of the earlier files, so curves do not double."""
        if not self.enabled:
            return
        self._purge_step = step + 1
        if not os.path.exists(self.path):
            return
        kept = [r for r in read_metrics(self.workdir) if r.get("step", 0) <= step]
        with atomic_open(self.path) as f:
            f.writelines(json.dumps(r) + "\n" for r in kept)

    def _events(self, split: str) -> SummaryWriter | None:
        if not (self.enabled and self.tensorboard):
            return None
        if split not in self._writers:
            # Opened on first use so that a purge step set by truncate_after() is in the file's header.
            # tensorboardX names files by the second; the suffix keeps a quick restart from
            # overwriting the previous file, and sorts after it, as TensorBoard reads them.
            logdir = os.path.join(self.workdir, TENSORBOARD_DIR, split)
            with _tensorboard_write(logdir):
                self._writers[split] = SummaryWriter(logdir, purge_step=self._purge_step,
                                                     filename_suffix=f".{time.time_ns()}")
        return self._writers[split]

    def write(self, step: int, split: str, metrics: dict[str, Any]) -> None:
        """One record: a line of ``metrics.jsonl`` and a scalar per numeric metric."""
        if not self.enabled:
            return
        record = {"step": int(step), "split": split, **{k: _clean(v) for k, v in metrics.items()}}
        line = (json.dumps(record) + "\n").encode("utf-8")
        try:
            with open(self.path, "ab") as f:
                size = f.tell()
                try:
                    f.write(line)
                    f.flush()
                except OSError:
                    with contextlib.suppress(OSError):
                        f.truncate(size)  # no partial record stays behind
                    raise
        except OSError as e:
            raise storage_error("appending to", self.path, e) from None
        events = self._events(split)
        if events is None:
            return
        with _tensorboard_write(events.logdir):
            for key, value in metrics.items():
                if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
                    events.add_scalar(key, float(value), int(step))
            events.flush()

    def write_examples(self, step: int, split: str, sources: Sequence[str], hypotheses: Sequence[str],
                       references: Sequence[str], figures: dict[str, Figure] | None = None) -> None:
        """Sample translations as a text table (:data:`TRANSLATIONS_TAG`) and figures as images
        (their tags), in TensorBoard only; the figures are rendered and released."""
        events = self._events(split)
        if events is None:
            return
        images = {tag: figure_to_rgb(fig) for tag, fig in (figures or {}).items()}
        with _tensorboard_write(events.logdir):
            events.add_text(TRANSLATIONS_TAG, examples_markdown(sources, hypotheses, references), int(step))
            for tag, rgb in images.items():
                events.add_image(tag, rgb, int(step), dataformats="HWC")
            events.flush()

    def close(self) -> None:
        """Close every event file; a failed write raises :class:`StorageError` once all are closed."""
        writers, self._writers = self._writers, {}
        with contextlib.ExitStack() as stack:
            for events in writers.values():
                stack.callback(self._close_events, events)

    @staticmethod
    def _close_events(events: SummaryWriter) -> None:
        with _tensorboard_write(events.logdir):
            events.close()

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        close_on_exit(self.close, failing=exc_type is not None)
