"""Sample ratio mismatch: a chi-square goodness-of-fit test of arm counts against weights.

A small p-value (GrowthBook warns below 0.001) means the observed split is very
unlikely under the configured weights: assignment, logging or targeting is broken.
The chi-square survival function is the regularized upper incomplete gamma function
Q(k/2, x/2), computed here by its series or continued fraction (Numerical Recipes'
split at x = a + 1), so the core needs no SciPy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

SRM_WARNING_P = 0.001  # GrowthBook's default threshold
_EPS = 1e-15
_MAX_ITERATIONS = 10_000


def _lower_series(a: float, x: float) -> float:
    """P(a, x) by its power series; converges fast for x < a + 1."""
    term = total = 1.0 / a
    denominator = a
    for _ in range(_MAX_ITERATIONS):
        denominator += 1.0
        term *= x / denominator
        total += term
        if abs(term) < abs(total) * _EPS:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _upper_fraction(a: float, x: float) -> float:
    """Q(a, x) by its continued fraction (modified Lentz); converges fast for x >= a + 1."""
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, _MAX_ITERATIONS):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return h * math.exp(-x + a * math.log(x) - math.lgamma(a))


def chi2_survival(statistic: float, dof: int) -> float:
    """P(X >= statistic) for X ~ chi-square with `dof` degrees of freedom."""
    if dof < 1:
        raise ValueError("dof must be >= 1")
    if statistic <= 0.0:
        return 1.0
    a, x = dof / 2.0, statistic / 2.0
    if x < a + 1.0:
        return max(0.0, 1.0 - _lower_series(a, x))
    return min(1.0, _upper_fraction(a, x))


def srm_p_value(counts: Sequence[int], weights: Sequence[float]) -> float | None:
    """The SRM p-value, or None when it is undefined (no data, or fewer than 2 live arms).

    Arms of weight 0 are left out of the test, unless they hold assignments: then
    the split is impossible under the weights and the p-value is 0.
    """
    if len(counts) != len(weights):
        raise ValueError("one count per weight")
    total = sum(counts)
    live = [(c, w) for c, w in zip(counts, weights, strict=True) if w > 0.0]
    if total > 0 and any(c > 0 for c, w in zip(counts, weights, strict=True) if w <= 0.0):
        return 0.0
    if total == 0 or len(live) < 2:
        return None
    weight_sum = math.fsum(w for _, w in live)
    statistic = 0.0
    for count, weight in live:
        expected = total * weight / weight_sum
        statistic += (count - expected) ** 2 / expected
    return chi2_survival(statistic, len(live) - 1)
