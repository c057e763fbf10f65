"""Whether the difference between two arms of an ablation is outside the noise of their seeds.

Each arm is a list of per-seed scores. :func:`summarize` gives the mean, the sample standard
deviation and the 95% confidence interval of the mean from Student's t distribution (n - 1
degrees of freedom); :func:`welch` compares two arms with Welch's t-test (unequal variances,
Welch-Satterthwaite degrees of freedom; what ``scipy.stats.ttest_ind(equal_var=False)`` computes),
two-sided.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from scipy import stats


@dataclasses.dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    sd: float  # sample standard deviation (NaN for one seed)
    ci_low: float  # the 95% confidence interval of the mean (NaN for one seed)
    ci_high: float


@dataclasses.dataclass(frozen=True)
class Comparison:
    difference: float  # mean of a minus mean of b
    t: float
    dof: float
    p: float  # two-sided


def summarize(values: Sequence[float], confidence: float = 0.95) -> Summary:
    """Mean, standard deviation and the t-based confidence interval of the mean of ``values``."""
    x = np.asarray(values, np.float64)
    n, mean = len(x), float(np.mean(x))
    if n < 2:
        return Summary(n, mean, math.nan, math.nan, math.nan)
    sd = float(np.std(x, ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return Summary(n, mean, sd, mean - half, mean + half)


def welch(a: Sequence[float], b: Sequence[float]) -> Comparison:
    """Welch's two-sided t-test of the means of ``a`` and ``b``. Two arms without any spread
    (every seed the same score, as at 100%) differ for certain if their means differ (p = 0)
    and not at all if they are equal (p = 1)."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    difference = float(np.mean(x) - np.mean(y))
    vx, vy = np.var(x, ddof=1) / len(x), np.var(y, ddof=1) / len(y)
    if vx + vy == 0:
        return Comparison(difference, 0.0 if difference == 0 else math.copysign(math.inf, difference),
                          float(len(x) + len(y) - 2), 1.0 if difference == 0 else 0.0)
    t = difference / math.sqrt(vx + vy)
    dof = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    return Comparison(difference, float(t), float(dof), float(2 * stats.t.sf(abs(t), dof)))
