"""The input pipeline: bucket by length, batch, pad, iterate with grain.

Each pair goes to the bucket pair (smallest source bucket >= source length,
smallest target bucket >= target length + 1); a batch holds pairs of one
bucket pair and is padded to exactly those lengths, so a run compiles one
program per bucket pair that occurs. Batches have a fixed number of rows per
bucket pair (``batch_size`` sentences, or as many as ``batch_tokens`` padded
tokens allow); the last batch of a bucket is filled with empty rows (all PAD,
``index`` -1), which the loss and metrics ignore. An empty row costs as much
as a real one, so the pairs left over past a smaller bucket pair's last full
batch move into a larger pair's empty rows when all of them fit there
(:func:`fill_empty_rows`).

Training order: each epoch shuffles with the seed ``(seed, epoch)``, buckets,
batches, and shuffles the batches, so the order is a function of the seed. The
iterator's state is ``{"epoch", "batch"}``; restoring it resumes at exactly
the next batch. On several hosts every host builds the same plan and keeps
its own slice of each batch's rows.

Evaluation batches are cut from the split sorted by length instead
(:func:`eval_plan`), each padded to the buckets of its longest pair.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Callable, Sequence

import grain
import numpy as np

from s2s_jax.config import Config, DataConfig
from s2s_jax.data.dataset import Data, TokenizedSplit, prepare_data
from s2s_jax.errors import ConfigError
from s2s_jax.vocab import BOS_ID, EOS_ID, PAD_ID


@dataclasses.dataclass(frozen=True)
class PlannedBatch:
    indices: np.ndarray  # [rows] into the split, -1 for an empty row
    src_len: int
    tgt_len: int  # decoder steps; the target array is one longer


def bucket_index(lengths: np.ndarray, buckets: tuple[int, ...]) -> np.ndarray:
    return np.searchsorted(np.asarray(buckets), lengths, side="left")


def pad_rows(rows: Sequence[Sequence[int]], width: int, num_rows: int | None = None) -> np.ndarray:
    """``rows`` right-padded with PAD_ID into [num_rows (default len(rows)), width] int32;
    rows beyond ``rows`` are all PAD."""
    out = np.full((len(rows) if num_rows is None else num_rows, width), PAD_ID, np.int32)
    for r, ids in enumerate(rows):
        out[r, :len(ids)] = ids
    return out


def pad_to_bucket(rows: Sequence[Sequence[int]], buckets: tuple[int, ...], num_rows: int | None = None) -> np.ndarray:
    """``rows`` padded to the smallest of ``buckets`` that holds the longest (its own length
    beyond the last), so repeated calls reuse a few compiled programs: [num_rows, bucket]."""
    longest = max((len(x) for x in rows), default=1)
    width = next((b for b in buckets if b >= longest), longest)
    return pad_rows(rows, width, num_rows)


def check_batch_rows(rows: int, multiple: int) -> None:
    """Refuse a batch of ``rows`` sentences that cannot be split evenly over ``multiple`` devices."""
    if rows % multiple:
        raise ConfigError(f"data.batch_size={rows} is not divisible by the {multiple} data-parallel devices.")


def rows_per_batch(cfg: DataConfig, src_len: int, tgt_len: int, multiple: int = 1) -> int:
    """Rows of a batch of this shape: ``batch_size``, or the most that fit
    ``batch_tokens`` padded tokens, rounded down to a multiple of ``multiple`` (but at
    least ``multiple``). A row costs the longer of its padded source and its decoder
    steps, so every batch has at most ``batch_tokens`` source tokens and decoder steps."""
    if cfg.batch_tokens <= 0:
        check_batch_rows(cfg.batch_size, multiple)
        return cfg.batch_size
    rows = cfg.batch_tokens // max(src_len, tgt_len)
    return max(multiple, rows - rows % multiple)


def fill_empty_rows(groups: dict[tuple[int, int], list[int]], rows_of: Callable[[tuple[int, int]], int]) -> None:
    """Moves, in place, the leftover pairs of a bucket pair (those past its last full batch of
    ``rows_of(pair)`` rows) into the empty rows of the last batch of a larger bucket pair (one at
    least as long on both sides) when all of them fit there. The donor loses a batch (and its
    compiled program when that was its only one); the receiver keeps its count of batches.

    ``groups`` maps (source bucket, target bucket) indices to pair indices; larger receivers and
    donors go first, so the leftovers move the shortest way among those that fit. On Multi30k
    (buckets 16/24/32/64, 128 rows) this takes an epoch from 236 batches in 16 shapes to 228 in 11,
    and real target tokens from 74% of the padded ones to 79%."""
    pairs = sorted(groups, reverse=True)
    rows = {pair: rows_of(pair) for pair in pairs}
    for receiver in pairs:
        free = -len(groups[receiver]) % rows[receiver]
        for donor in pairs:
            left = len(groups[donor]) % rows[donor]
            if donor != receiver and donor[0] <= receiver[0] and donor[1] <= receiver[1] and 0 < left <= free:
                groups[receiver] += groups[donor][-left:]
                del groups[donor][-left:]
                free -= left


def make_plan(split: TokenizedSplit, cfg: DataConfig, *, seed: int = 0, epoch: int = 0,
              multiple: int = 1) -> list[PlannedBatch]:
    """The shuffled training batches of one pass over ``split``, :func:`rows_per_batch` rows each."""
    buckets = cfg.bucket_lengths
    src_b = bucket_index(split.src_lengths, buckets)
    tgt_b = bucket_index(split.tgt_lengths + 1, buckets)
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(split))
    groups: dict[tuple[int, int], list[int]] = collections.defaultdict(list)
    for i in order:
        groups[(src_b[i], tgt_b[i])].append(int(i))

    def rows_of(pair: tuple[int, int]) -> int:
        return rows_per_batch(cfg, buckets[pair[0]], buckets[pair[1]], multiple)

    fill_empty_rows(groups, rows_of)
    plan = []
    for (sb, tb), members in sorted(groups.items()):
        src_len, tgt_len = buckets[sb], buckets[tb]
        n = rows_of((sb, tb))
        for start in range(0, len(members), n):
            chunk = np.full((n,), -1, np.int64)
            part = members[start:start + n]
            chunk[:len(part)] = part
            plan.append(PlannedBatch(chunk, src_len, tgt_len))
    return [plan[i] for i in rng.permutation(len(plan))]


def collate(split: TokenizedSplit, planned: PlannedBatch, process_index: int = 0,
            process_count: int = 1) -> dict[str, np.ndarray]:
    """A planned batch (this process's rows of it) as padded arrays:
    src [rows, src_len], tgt [rows, tgt_len + 1] = BOS y EOS PAD..., index [rows]."""
    indices = np.array_split(planned.indices, process_count)[process_index]
    src = pad_rows([split.src[i] if i >= 0 else () for i in indices], planned.src_len)
    tgt = pad_rows([(BOS_ID, *split.tgt[i], EOS_ID) if i >= 0 else () for i in indices], planned.tgt_len + 1)
    return {"src": src, "tgt": tgt, "index": indices.astype(np.int32)}


class BatchIterator:
    """Endless training batches over epochs, with a checkpointable state."""

    def __init__(self, split: TokenizedSplit, cfg: DataConfig, seed: int, *, multiple: int = 1,
                 process_index: int = 0, process_count: int = 1, prefetch: int = 4):
        self.split, self.cfg, self.seed, self.multiple = split, cfg, seed, multiple
        self.process_index, self.process_count, self.prefetch = process_index, process_count, prefetch
        self.epoch, self.batch = 0, 0
        self._iter = None
        self._plan_len: dict[int, int] = {}

    def _plan(self, epoch: int) -> list[PlannedBatch]:
        plan = make_plan(self.split, self.cfg, seed=self.seed, epoch=epoch, multiple=self.multiple)
        self._plan_len[epoch] = len(plan)
        return plan

    @functools.cached_property
    def steps_per_epoch(self) -> int:
        return len(self._plan(0))

    def _start(self) -> None:
        plan = self._plan(self.epoch)[self.batch:]
        fn = functools.partial(collate, self.split, process_index=self.process_index,
                               process_count=self.process_count)
        ds = grain.MapDataset.source(plan).map(fn)
        options = grain.ReadOptions(num_threads=1, prefetch_buffer_size=self.prefetch)
        self._iter = iter(ds.to_iter_dataset(options))

    def __iter__(self) -> BatchIterator:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        while True:
            if self._iter is None:
                self._start()
            try:
                batch = next(self._iter)
            except StopIteration:
                self.epoch, self.batch, self._iter = self.epoch + 1, 0, None
                continue
            self.batch += 1
            return batch

    @property
    def epoch_progress(self) -> float:
        """Epochs completed, fractional."""
        n = self._plan_len.get(self.epoch) or len(self._plan(self.epoch))
        return self.epoch + self.batch / max(n, 1)

    def get_state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batch": self.batch}

    def set_state(self, state: dict[str, int]) -> None:
        self.epoch, self.batch, self._iter = int(state["epoch"]), int(state["batch"]), None


def eval_plan(split: TokenizedSplit, cfg: DataConfig, *, multiple: int = 1) -> list[PlannedBatch]:
    """``split`` sorted by the longer of each pair's source and decoder steps, then its source,
    and cut into batches of ``eval_batch_size`` rows (rounded up to a multiple of ``multiple``, and
    no more than the split needs), each padded to the smallest buckets that hold its longest
    source and its longest target. Only the last batch has empty rows: grouped by bucket pair as
    for training, a small split left most of each pair's last batch empty, and an empty row costs
    as much as a real one (BENCHMARKS.md, "Evaluation batches cut from the sorted split")."""
    rows = -(-cfg.eval_batch_size // multiple) * multiple
    rows = min(rows, -(-len(split) // multiple) * multiple) or multiple
    buckets = np.asarray(cfg.bucket_lengths)
    src, steps = split.src_lengths, split.tgt_lengths + 1
    order = np.lexsort((src, np.maximum(src, steps)))
    plan = []
    for start in range(0, len(order), rows):
        part = order[start:start + rows]
        chunk = np.full((rows,), -1, np.int64)
        chunk[:len(part)] = part
        src_b, tgt_b = (int(buckets[bucket_index(lengths[part].max(), cfg.bucket_lengths)]) for lengths in (src, steps))
        plan.append(PlannedBatch(chunk, src_b, tgt_b))
    return plan


def eval_batches(split: TokenizedSplit, cfg: DataConfig, *, limit: int = 0, multiple: int = 1,
                 process_index: int = 0, process_count: int = 1) -> list[dict[str, np.ndarray]]:
    """The first ``limit`` pairs (0: all) of ``split`` sorted by length into batches of
    ``eval_batch_size`` rows; ``index`` maps rows back to the split's order."""
    if limit and limit < len(split):
        split = dataclasses.replace(split, src=split.src[:limit], tgt=split.tgt[:limit],
                                    raw_src=split.raw_src[:limit], raw_tgt=split.raw_tgt[:limit])
    return [collate(split, p, process_index, process_count) for p in eval_plan(split, cfg, multiple=multiple)]


def load_data(cfg: Config, workdir: str | None = None, *, multiple: int = 1, process_index: int = 0,
              process_count: int = 1) -> tuple[Data, BatchIterator]:
    """The data of ``cfg`` and its training batches: ``(data, batches)``.

    ``data`` holds the config with the vocabulary sizes filled in (``data.config``), the
    tokenizers (trained on the training split, or loaded from ``workdir`` and saved there when
    given) and the tokenized splits; ``batches`` iterates over shuffled training batches
    ``{"src", "tgt", "index"}`` in the order of ``train.seed``. ``multiple`` rounds the rows of a
    batch for that many devices; each of ``process_count`` hosts gets its slice of every batch."""
    data = prepare_data(cfg, workdir)
    batches = BatchIterator(data.splits["train"], data.config.data, seed=cfg.train.seed, multiple=multiple,
                            process_index=process_index, process_count=process_count)
    return data, batches
