"""The memo's parts on their own: its statistics against independent formulas (scipy's contingency test, the
z-test's power), its findings replayed from recorded mart rows against a snapshot, its choice of insights."""

from __future__ import annotations

import datetime
import decimal
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from pulse.bi.memo import Candidates, Memo, choose
from pulse.bi.memo.stats import ALPHA, POWER, format_p, sample_size_per_arm, two_proportions, welch

DATA = Path(__file__).parent / "data"
SNAPSHOT = DATA / "memo_findings.snapshot.json"


@pytest.mark.parametrize(("x1", "n1", "x2", "n2"), [(45, 100, 30, 100), (412, 1_000, 380, 1_100), (5, 40, 9, 35), (0, 10, 3, 10)])
def test_two_proportions_equals_the_chi_square_test_of_the_table(x1, n1, x2, n2):
    _, p, _, _ = sps.chi2_contingency([[x1, n1 - x1], [x2, n2 - x2]], correction=False)
    assert two_proportions(x1, n1, x2, n2) == pytest.approx(p, rel=1e-9)


def test_two_proportions_without_data_is_no_evidence():
    assert two_proportions(0, 0, 3, 10) == 1.0
    assert two_proportions(0, 10, 0, 10) == 1.0  # no variance at all


def power_of_z_test(p1: float, p2: float, n: int) -> float:
    """Power of the two-sided two-proportion z-test with n users per arm (normal approximation)."""
    pbar = (p1 + p2) / 2
    za = sps.norm.ppf(1 - ALPHA / 2)
    spread = math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return float(sps.norm.cdf((abs(p1 - p2) * math.sqrt(n) - za * math.sqrt(2 * pbar * (1 - pbar))) / spread))


@pytest.mark.parametrize(("p1", "p2"), [(0.10, 0.15), (0.30, 0.35), (0.50, 0.52), (0.20, 0.10)])
def test_sample_size_is_the_smallest_with_the_power_asked_for(p1, p2):
    n = sample_size_per_arm(p1, p2)
    assert power_of_z_test(p1, p2, n) >= POWER > power_of_z_test(p1, p2, n - 1)


def test_sample_size_matches_the_textbook_value():
    assert sample_size_per_arm(0.10, 0.15) == 686  # Fleiss, no continuity correction, alpha 0.05, power 0.8
    assert sample_size_per_arm(0.4, 0.4) == 0


def test_welch_equals_the_formula():
    rng = np.random.default_rng(3)
    a, b = rng.normal(10, 2, 40), rng.normal(11, 5, 25)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    assert welch(a, b) == pytest.approx(2 * sps.t.sf(abs(t), dof), rel=1e-9)
    assert welch(a[:1], b) == 1.0


def test_p_values_print_as_people_read_them():
    assert format_p(0.0004) == "< 0.001"
    assert format_p(0.0312) == "= 0.031"


def _decode(value):
    if isinstance(value, dict):
        [(kind, text)] = value.items()
        return {"date": datetime.date.fromisoformat, "datetime": datetime.datetime.fromisoformat, "decimal": decimal.Decimal}[
            kind
        ](text)
    return value


def replayed_findings():
    recorded = {
        r["sql"]: [tuple(_decode(v) for v in row) for row in r["rows"]] for r in json.loads((DATA / "memo_rows.json").read_text())
    }
    return Candidates(lambda sql: recorded[sql]).all()


def _summary(f) -> dict:
    return {
        "key": f.key, "title": f.title, "text": f.text, "sql": f.sql.strip(), "test": f.test,
        "effect": round(f.effect, 9), "p_value": float(f"{f.p_value:.9g}"),
        "numbers": {k: round(float(v), 9) for k, v in f.numbers.items()}, "hypothesis": f.hypothesis,
    }  # fmt: skip


def test_findings_from_recorded_rows_match_their_snapshot():
    """Each finding's SQL, sentence, numbers and test, from mart rows recorded on a 60k-event source. A changed
    finding shows here as a diff; PULSE_UPDATE_SNAPSHOTS=1 rewrites the snapshot after a deliberate change."""
    got = [_summary(f) for f in replayed_findings()]
    if os.environ.get("PULSE_UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n")
    assert got == json.loads(SNAPSHOT.read_text())


def test_insights_are_the_strongest_significant_findings():
    candidates = replayed_findings()
    insights, hypotheses = choose(candidates)
    significant = [f for f in candidates if f.p_value < ALPHA]
    assert insights and set(map(id, insights)) <= set(map(id, significant))
    weakest_chosen = min(f.effect for f in insights)
    assert all(f.effect <= weakest_chosen for f in significant if f not in insights)
    assert len(hypotheses) == 2 and all(f.hypothesis for f in hypotheses)
    memo = Memo("regress", "2026-10-31", insights, hypotheses, candidates).markdown()
    assert all(f.title in memo for f in insights) and memo.count("**H") == 2
