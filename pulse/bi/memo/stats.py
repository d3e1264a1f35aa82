"""The memo's statistics: significance tests and sample sizes, pure functions of their numbers."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

ALPHA = 0.05
POWER = 0.8


def format_p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def two_proportions(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p-value of a two-proportion z-test (pooled variance)."""
    if min(n1, n2) == 0:
        return 1.0
    p = (x1 + x2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (x1 / n1 - x2 / n2) / se
    return float(2 * stats.norm.sf(abs(z)))


def proportions_differ(successes: list[int], totals: list[int]) -> float:
    """p-value of the chi-square test that k groups share one rate (k x 2 table, no continuity correction).
    For two groups it equals the two-proportion z-test; for more it tests all of them at once, which a
    test of the best against the worst group (picked after looking) does not."""
    table = [[x, n - x] for x, n in zip(successes, totals, strict=True) if n > 0]
    if len(table) < 2 or min(sum(col) for col in zip(*table, strict=True)) == 0:
        return 1.0
    return float(stats.chi2_contingency(table, correction=False)[1])


def means_differ(samples: list[np.ndarray]) -> float:
    """p-value of Welch's one-way ANOVA that k groups share one mean (unequal variances); Welch's t-test
    for two groups."""
    samples = [s for s in samples if len(s) >= 2]
    if len(samples) < 2:
        return 1.0
    return float(stats.f_oneway(*samples, equal_var=False).pvalue)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given: the i-th smallest p times (m - i + 1), made
    non-decreasing and capped at 1. A finding is significant when its adjusted p < ALPHA: over m
    candidates the chance of any false finding stays at most ALPHA (uncorrected it would be ~1-(1-ALPHA)^m)."""
    m = len(p_values)
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda k: p_values[k])):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def sample_size_per_arm(p1: float, p2: float) -> int:
    """Users per arm to detect p1 -> p2 with a two-sided test at ALPHA with POWER."""
    if p1 == p2:
        return 0
    za, zb = stats.norm.ppf(1 - ALPHA / 2), stats.norm.ppf(POWER)
    pbar = (p1 + p2) / 2
    n = (za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2 / (p1 - p2) ** 2
    return math.ceil(n)


def welch(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p-value of Welch's t-test (unequal variances)."""
    if len(a) < 2 or len(b) < 2:
        return 1.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)
