"""The input pipeline against Python-loop references: every pair whole in exactly one
batch per epoch, padded to its own bucket pair only, token budgets kept, seeded order,
exact resumption from the iterator state, per-process row slices, evaluation coverage."""

from __future__ import annotations

import collections
import dataclasses

import numpy as np
import pytest

from s2s_jax.config import DataConfig
from s2s_jax.data.dataset import TokenizedSplit
from s2s_jax.data.pipeline import BatchIterator, collate, eval_batches, make_plan
from s2s_jax.vocab import BOS_ID, EOS_ID, PAD_ID

BUCKETS = (4, 8, 12, 16)


def make_split(n: int = 157, seed: int = 0) -> TokenizedSplit:
    """Random pairs that fit the buckets: source <= 16 tokens, target <= 15 (it gains BOS and EOS)."""
    rng = np.random.default_rng(seed)
    src = [rng.integers(4, 100, int(rng.integers(1, 17))).astype(np.int32) for _ in range(n)]
    tgt = [rng.integers(4, 100, int(rng.integers(1, 16))).astype(np.int32) for _ in range(n)]
    return TokenizedSplit("train", src, tgt, [f"s{i}" for i in range(n)], [f"t{i}" for i in range(n)])


def smallest_bucket(length: int) -> int:
    return min(b for b in BUCKETS if b >= length)


def expected_row(split: TokenizedSplit, i: int, src_len: int, tgt_len: int) -> tuple[np.ndarray, np.ndarray]:
    src = np.full(src_len, PAD_ID, np.int32)
    src[:len(split.src[i])] = split.src[i]
    tgt = np.full(tgt_len, PAD_ID, np.int32)
    row = [BOS_ID, *split.tgt[i].tolist(), EOS_ID]
    tgt[:len(row)] = row
    return src, tgt


def check_batch(split: TokenizedSplit, batch: dict[str, np.ndarray]) -> list[int]:
    """Every row is a whole pair (or an all-PAD filler), the shape is the rows' own smallest
    bucket pair; returns the pair indices."""
    src_len, tgt_len = batch["src"].shape[1], batch["tgt"].shape[1] - 1
    assert src_len in BUCKETS and tgt_len in BUCKETS
    real = [int(i) for i in batch["index"] if i >= 0]
    for row, i in enumerate(batch["index"]):
        if i < 0:
            assert not batch["src"][row].any() and not batch["tgt"][row].any()
            continue
        assert smallest_bucket(len(split.src[i])) == src_len
        assert smallest_bucket(len(split.tgt[i]) + 1) == tgt_len  # decoder steps: y1..yn EOS
        want_src, want_tgt = expected_row(split, i, src_len, tgt_len + 1)
        np.testing.assert_array_equal(batch["src"][row], want_src)
        np.testing.assert_array_equal(batch["tgt"][row], want_tgt)
    return real


def epoch_batches(split, cfg, seed=0, epoch=0):
    return [collate(split, p) for p in make_plan(split, cfg, seed=seed, epoch=epoch)]


@pytest.mark.parametrize("batch_tokens", [0, 16, 40, 64])
def test_every_pair_once_whole_and_padded_to_its_bucket(batch_tokens):
    split = make_split()
    cfg = DataConfig(bucket_lengths=BUCKETS, batch_size=8, batch_tokens=batch_tokens)
    seen = []
    for batch in epoch_batches(split, cfg):
        seen += check_batch(split, batch)
        rows, src_len, steps = len(batch["index"]), batch["src"].shape[1], batch["tgt"].shape[1] - 1
        if batch_tokens:
            assert rows * max(src_len, steps) <= batch_tokens  # the budget holds...
            assert (rows + 1) * max(src_len, steps) > batch_tokens  # ...and is used
        else:
            assert rows == 8
    assert sorted(seen) == list(range(len(split)))
    # Only the last batch of a bucket pair has filler rows.
    per_bucket = collections.Counter()
    for batch in epoch_batches(split, cfg):
        per_bucket[batch["src"].shape[1], batch["tgt"].shape[1]] += int(np.sum(batch["index"] < 0) > 0)
    assert max(per_bucket.values()) == 1


def test_seeded_order():
    split = make_split()
    cfg = DataConfig(bucket_lengths=BUCKETS, batch_size=8)

    def order(seed, epoch=0):
        return [b["index"].tolist() for b in epoch_batches(split, cfg, seed, epoch)]

    assert order(0) == order(0)
    assert order(0) != order(1)
    assert order(0) != order(0, epoch=1)  # reshuffled every epoch
    assert sorted(i for b in order(1) for i in b) == sorted(i for b in order(0) for i in b)


def take(iterator, n):
    return [next(iterator) for _ in range(n)]


def assert_same_batches(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])


def test_iterator_follows_the_plan_across_epochs_and_resumes_exactly():
    split = make_split()
    cfg = DataConfig(bucket_lengths=BUCKETS, batch_size=8)
    it = BatchIterator(split, cfg, seed=3)
    n = it.steps_per_epoch
    reference = take(it, 2 * n + 3)
    plan = epoch_batches(split, cfg, 3, 0) + epoch_batches(split, cfg, 3, 1) + epoch_batches(split, cfg, 3, 2)[:3]
    assert_same_batches(reference, plan)
    # Resume mid-epoch, exactly at the end of an epoch, and just after one.
    for k in (5, n, n + 1, 2 * n - 1):
        first = BatchIterator(split, cfg, seed=3)
        take(first, k)
        state = first.get_state()
        resumed = BatchIterator(split, cfg, seed=3)
        resumed.set_state(dict(state))
        assert_same_batches(take(resumed, 4), reference[k:k + 4])
        take(first, 4)
        assert resumed.get_state() == first.get_state()
    assert it.get_state() == {"epoch": 2, "batch": 3}
    assert it.epoch_progress == pytest.approx(2 + 3 / n)


@pytest.mark.parametrize("process_count", [2, 4])
def test_processes_partition_each_batch(process_count):
    split = make_split()
    cfg = DataConfig(bucket_lengths=BUCKETS, batch_size=8)
    whole = take(BatchIterator(split, cfg, seed=1), 30)
    parts = [take(BatchIterator(split, cfg, seed=1, process_index=p, process_count=process_count), 30)
             for p in range(process_count)]
    for step, batch in enumerate(whole):
        for k in batch:
            joined = np.concatenate([parts[p][step][k] for p in range(process_count)])
            np.testing.assert_array_equal(joined, batch[k])
        assert {len(parts[p][step]["index"]) for p in range(process_count)} == {8 // process_count}


@pytest.mark.parametrize(("limit", "multiple", "eval_batch_size"), [(0, 1, 16), (50, 1, 16), (0, 3, 10), (0, 1, 500)])
def test_eval_batches_cover_every_pair_once(limit, multiple, eval_batch_size):
    split = make_split()
    cfg = DataConfig(bucket_lengths=BUCKETS, eval_batch_size=eval_batch_size)
    batches = eval_batches(split, cfg, limit=limit, multiple=multiple)
    seen = []
    for batch in batches:
        seen += check_batch(split, batch)
        assert len(batch["index"]) % multiple == 0
        assert len(batch["index"]) <= max(eval_batch_size, multiple) + multiple - 1
    assert sorted(seen) == list(range(limit or len(split)))


def test_eval_batches_of_a_small_split_are_not_padded_to_the_batch_size():
    split = make_split(5)
    batches = eval_batches(split, DataConfig(bucket_lengths=BUCKETS, eval_batch_size=256))
    assert all(len(b["index"]) <= 5 for b in batches)
    single = dataclasses.replace(split, src=split.src[:1], tgt=split.tgt[:1])
    assert [len(b["index"]) for b in eval_batches(single, DataConfig(bucket_lengths=BUCKETS))] == [1]
