"""The input pipeline against Python-loop references: every pair whole in exactly one
batch per epoch, padded to its own bucket pair or to a larger pair's empty rows, token budgets
kept, seeded order, exact resumption from the iterator state, an epoch started without formatting
the split, per-process row slices, evaluation batches cut from the sorted split."""

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
    """Every row is a whole pair (or an all-PAD filler) in a bucket pair that holds it;
    returns the pair indices."""
    src_len, tgt_len = batch["src"].shape[1], batch["tgt"].shape[1] - 1
    assert src_len in BUCKETS and tgt_len in BUCKETS
    real = [int(i) for i in batch["index"] if i >= 0]
    for row, i in enumerate(batch["index"]):
        if i < 0:
            assert not batch["src"][row].any() and not batch["tgt"][row].any()
            continue
        assert smallest_bucket(len(split.src[i])) <= src_len
        assert smallest_bucket(len(split.tgt[i]) + 1) <= tgt_len  # decoder steps: y1..yn EOS
        want_src, want_tgt = expected_row(split, i, src_len, tgt_len + 1)
        np.testing.assert_array_equal(batch["src"][row], want_src)
        np.testing.assert_array_equal(batch["tgt"][row], want_tgt)
    return real


def epoch_batches(split, cfg, seed=0, epoch=0):
    return [collate(split, p) for p in make_plan(split, cfg, seed=seed, epoch=epoch)]


@pytest.mark.parametrize("batch_tokens", [0, 16, 40, 64])
def test_every_pair_once_whole_and_in_a_bucket_pair_that_holds_it(batch_tokens):
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
    # Only the last batch of a bucket pair has filler rows, and no pair's leftover pairs (those
    # of its batch with filler rows) would all fit the filler rows of a pair that holds them.
    filler = collections.defaultdict(list)
    rows = {}
    for batch in epoch_batches(split, cfg):
        shape = batch["src"].shape[1], batch["tgt"].shape[1] - 1
        filler[shape].append(int(np.sum(batch["index"] < 0)))
        rows[shape] = len(batch["index"])
    assert all(sum(n > 0 for n in counts) <= 1 for counts in filler.values())
    free = {shape: max(counts) for shape, counts in filler.items()}
    for donor in filler:
        for receiver in filler:
            if donor != receiver and donor[0] <= receiver[0] and donor[1] <= receiver[1] and free[donor]:
                assert rows[donor] - free[donor] > free[receiver]


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


class Unprintable(list):
    def __repr__(self) -> str:
        raise AssertionError("the split's arrays were formatted")


def test_starting_an_epoch_does_not_format_the_split():
    """grain names its map transform by the function's repr; the collate function holds the split,
    whose arrays, formatted, took seconds at every epoch's start for Multi30k."""
    split = make_split()
    split = dataclasses.replace(split, src=Unprintable(split.src), tgt=Unprintable(split.tgt),
                                raw_src=Unprintable(split.raw_src), raw_tgt=Unprintable(split.raw_tgt))
    assert repr(split) == "TokenizedSplit('train', 157 pairs, dropped=0, truncated=0)"
    it = BatchIterator(split, DataConfig(bucket_lengths=BUCKETS, batch_size=8), seed=0)
    check_batch(split, next(it))


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


@pytest.mark.parametrize("multiple", [1, 3])
def test_eval_batches_are_the_split_sorted_by_length_and_padded_to_their_longest(multiple):
    split = make_split()
    batches = eval_batches(split, DataConfig(bucket_lengths=BUCKETS, eval_batch_size=17), multiple=multiple)
    rows = 17 if multiple == 1 else 18  # rounded up for the devices
    src = [len(x) for x in split.src]
    steps = [len(y) + 1 for y in split.tgt]
    order = sorted(range(len(split)), key=lambda i: (max(src[i], steps[i]), src[i]))  # a stable sort
    assert len(batches) == -(-len(split) // rows)
    for k, batch in enumerate(batches):
        real = [int(i) for i in batch["index"] if i >= 0]
        assert real == order[k * rows:(k + 1) * rows]  # only the last batch has empty rows
        assert batch["src"].shape == (rows, smallest_bucket(max(src[i] for i in real)))
        assert batch["tgt"].shape == (rows, smallest_bucket(max(steps[i] for i in real)) + 1)
        check_batch(split, batch)


def test_eval_batches_of_a_small_split_are_not_padded_to_the_batch_size():
    split = make_split(5)
    batches = eval_batches(split, DataConfig(bucket_lengths=BUCKETS, eval_batch_size=256))
    assert all(len(b["index"]) <= 5 for b in batches)
    single = dataclasses.replace(split, src=split.src[:1], tgt=split.tgt[:1])
    assert [len(b["index"]) for b in eval_batches(single, DataConfig(bucket_lengths=BUCKETS))] == [1]


def sized_split(counts: dict[tuple[int, int], int]) -> TokenizedSplit:
    """``counts[(source length, target length)]`` pairs of those lengths (target without EOS)."""
    src, tgt = [], []
    for (s, t), n in counts.items():
        src += [np.full(s, 7, np.int32)] * n
        tgt += [np.full(t, 9, np.int32)] * n
    return TokenizedSplit("train", src, tgt, [""] * len(src), [""] * len(src))


@pytest.mark.parametrize(("counts", "want"), [
    # 11 pairs in (16, 16) leave 5 empty rows: the 3 left over from (8, 8), then the 2 of (4, 4), fill them.
    ({(16, 15): 11, (8, 7): 11, (4, 3): 2}, {(16, 16): [8, 8], (8, 8): [8]}),
    # 6 leftovers do not fit 5 empty rows.
    ({(16, 15): 11, (4, 3): 6}, {(16, 16): [8, 3], (4, 4): [6]}),
    # Neither of (16, 8) and (4, 16) holds the other.
    ({(16, 7): 3, (4, 15): 1}, {(16, 8): [3], (4, 16): [1]}),
])
def test_leftovers_move_into_the_empty_rows_of_a_larger_bucket_pair(counts, want):
    split = sized_split(counts)
    plan = make_plan(split, DataConfig(bucket_lengths=BUCKETS, batch_size=8), seed=0)
    got = collections.defaultdict(list)
    for p in plan:
        got[p.src_len, p.tgt_len].append(int(np.sum(p.indices >= 0)))
    assert {k: sorted(v, reverse=True) for k, v in got.items()} == want
    for batch in (collate(split, p) for p in plan):
        check_batch(split, batch)
