"""Synthetic tasks: correct targets, deterministic by seed, disjoint splits."""

from __future__ import annotations

import datetime

import pytest

from s2s_jax.data.synthetic import TASKS, generate


@pytest.mark.parametrize("task", list(TASKS))
def test_splits_are_deterministic_and_disjoint(task):
    a = generate(task, (300, 50, 50), seed=1)
    assert a == generate(task, (300, 50, 50), seed=1)
    assert a != generate(task, (300, 50, 50), seed=2)
    sources = [{s for s, _ in split} for split in a]
    assert [len(s) for s in sources] == [300, 50, 50]
    assert not (sources[0] & sources[1] or sources[0] & sources[2] or sources[1] & sources[2])


def test_targets_are_correct():
    for s, t in generate("reverse", (50, 1, 1), 0)[0]:
        assert t == s[::-1]
    for s, t in generate("sort", (50, 1, 1), 0)[0]:
        assert t == "".join(sorted(s))
    for s, t in generate("addition", (50, 1, 1), 0)[0]:
        a, b = s.split("+")
        assert int(t) == int(a) + int(b)


def test_dates_are_valid_iso_dates_of_their_source():
    months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    for s, t in generate("dates", (300, 1, 1), 0)[0]:
        d = datetime.date.fromisoformat(t)
        low = s.lower()
        assert str(d.day) in low
        assert months[d.month - 1] in low or str(d.month) in low
        assert str(d.year) in low or f"{d.year % 100:02d}" in low


