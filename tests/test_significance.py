"""The confidence intervals and Welch's test against hand computations on fixed numbers."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from s2s_jax.significance import summarize, welch

A = [91.0, 93.5, 95.0, 99.5]
B = [99.0, 99.5, 99.6, 99.8, 100.0]


def test_the_interval_is_the_mean_plus_minus_t_times_the_standard_error():
    s = summarize(A)
    mean = sum(A) / 4
    sd = math.sqrt(sum((x - mean) ** 2 for x in A) / 3)
    t_975_3 = 3.182446305284263  # Student's t, 97.5th percentile, 3 degrees of freedom (tables)
    assert (s.n, s.mean, s.sd) == pytest.approx((4, mean, sd))
    assert (s.ci_low, s.ci_high) == pytest.approx((mean - t_975_3 * sd / 2, mean + t_975_3 * sd / 2))
    one = summarize([5.0])
    assert one.mean == 5.0 and math.isnan(one.sd) and math.isnan(one.ci_low)


def test_welch_statistic_and_degrees_of_freedom():
    va = summarize(A).sd ** 2 / len(A)
    vb = summarize(B).sd ** 2 / len(B)
    t = (sum(A) / len(A) - sum(B) / len(B)) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (len(A) - 1) + vb**2 / (len(B) - 1))
    c = welch(A, B)
    assert (c.t, c.dof) == pytest.approx((t, dof))
    assert c.difference == pytest.approx(sum(A) / 4 - sum(B) / 5)
    assert c.p == pytest.approx(2 * stats.t.sf(abs(t), dof))  # two-sided
    assert 0.05 < c.p < 0.1  # t = -2.69 at 3.05 degrees of freedom: not significant at 5%
    assert welch(A, A).p == pytest.approx(1.0)
    reference = stats.ttest_ind(A, B, equal_var=False)
    assert (c.t, c.p) == pytest.approx((reference.statistic, reference.pvalue))


def test_arms_without_spread():
    assert welch([100.0] * 3, [100.0] * 4).p == 1.0
    assert welch([100.0] * 3, [90.0] * 4).p == 0.0
