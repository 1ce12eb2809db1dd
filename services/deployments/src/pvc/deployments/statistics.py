"""Welch's t-test from summary statistics, with an exact Student t distribution (no SciPy).

The two-sided p-value of t with df degrees of freedom is the regularized incomplete beta
I_x(df/2, 1/2) at x = df / (df + t²); the 95% interval uses the t quantile found by bisection on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    count: int
    mean: float
    stddev: float  # sample standard deviation (n - 1)


@dataclass(frozen=True)
class Comparison:
    delta: float
    ci95: tuple[float, float]
    p_value: float
    t: float
    df: float


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Lentz's method for the continued fraction of the incomplete beta (Numerical Recipes 6.4)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def regularized_beta(a: float, b: float, x: float) -> float:
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with `df` degrees of freedom."""
    if math.isinf(t):
        return 0.0
    return regularized_beta(df / 2.0, 0.5, df / (df + t * t))


def t_quantile(probability: float, df: float) -> float:
    """The t with P(T <= t) = probability, for probability in (0.5, 1)."""
    target = 2.0 * (1.0 - probability)  # the two-sided tail mass beyond t
    lo, hi = 0.0, 1.0
    while t_two_sided_p(hi, df) > target:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_two_sided_p(mid, df) > target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return (lo + hi) / 2.0


def welch(variant: Sample, control: Sample) -> Comparison | None:
    """Difference of means variant - control, its 95% CI and two-sided p-value; None below 2 points each."""
    if variant.count < 2 or control.count < 2:
        return None
    delta = variant.mean - control.mean
    v1 = variant.stddev**2 / variant.count
    v2 = control.stddev**2 / control.count
    se2 = v1 + v2
    if se2 == 0.0:
        # Both samples are constant: the difference is exact.
        return Comparison(delta, (delta, delta), 1.0 if delta == 0 else 0.0, 0.0, math.inf)
    se = math.sqrt(se2)
    df = se2**2 / (v1**2 / (variant.count - 1) + v2**2 / (control.count - 1))
    t = delta / se
    half = t_quantile(0.975, df) * se
    return Comparison(delta, (delta - half, delta + half), t_two_sided_p(t, df), t, df)
