"""Welch's t-test against a known worked example and the t distribution against table values."""

from __future__ import annotations

import math
import statistics

import pytest

from pvc.deployments.statistics import Sample, t_quantile, t_two_sided_p, welch


@pytest.mark.parametrize(
    ("df", "quantile"), [(1, 12.7062047), (2, 4.3026527), (10, 2.2281389), (30, 2.0422725), (1e7, 1.9599640)]
)
def test_t_quantiles_match_tables(df: float, quantile: float) -> None:
    assert math.isclose(t_quantile(0.975, df), quantile, rel_tol=1e-6)
    assert math.isclose(t_two_sided_p(quantile, df), 0.05, rel_tol=1e-5)


def test_welch_worked_example() -> None:
    # Example 1 of Wikipedia's "Welch's t-test": t = -2.46, df = 24.99, p = 0.021.
    a1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
    a2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]
    result = welch(
        Sample(len(a1), statistics.fmean(a1), statistics.stdev(a1)),
        Sample(len(a2), statistics.fmean(a2), statistics.stdev(a2)),
    )
    assert result is not None
    assert math.isclose(result.t, -2.4554, abs_tol=1e-4)
    assert math.isclose(result.df, 24.9885, abs_tol=1e-4)
    assert math.isclose(result.p_value, 0.021378, abs_tol=1e-6)
    assert math.isclose(result.ci95[0], -3.98410, abs_tol=1e-4)
    assert math.isclose(result.ci95[1], -0.34924, abs_tol=1e-4)


def test_too_few_points_and_constant_samples() -> None:
    assert welch(Sample(1, 5.0, 0.0), Sample(10, 4.0, 1.0)) is None
    same = welch(Sample(5, 3.0, 0.0), Sample(5, 3.0, 0.0))
    assert same is not None
    assert (same.delta, same.p_value, same.ci95) == (0.0, 1.0, (0.0, 0.0))
