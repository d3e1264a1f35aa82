"""The memo's candidate findings: each is one query on the published marts, an effect size and a
significance test; a template turns the query's numbers into a sentence (and, for some, a hypothesis
with its experiment)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pulse.bi.memo.stats import ALPHA, holm, means_differ, proportions_differ, sample_size_per_arm, two_proportions, welch
from pulse.common.figures import bars, series


@dataclass
class Finding:
    key: str
    title: str
    text: str  # Markdown, every number in it comes from `numbers`
    numbers: dict[str, float]
    sql: str
    effect: float  # relative effect: |difference| / baseline
    p_value: float
    test: str
    plot: Callable | None = None  # draws the finding's picture on a matplotlib Axes
    hypothesis: dict[str, str] | None = None  # statement, metric, segment, expected, experiment

    p_adjusted: float | None = None  # Holm-adjusted over the memo's candidates (set by ``choose``)

    @property
    def p_judged(self) -> float:
        """The p-value significance is judged on: Holm-adjusted once ``choose`` has seen all candidates."""
        return self.p_value if self.p_adjusted is None else self.p_adjusted

    @property
    def significant(self) -> bool:
        return self.p_judged < ALPHA


class Candidates:
    """Computes every candidate finding from the marts of one source."""

    def __init__(self, query: Callable[[str], list[tuple]]) -> None:
        self.query = query

    def all(self) -> list[Finding]:
        out = []
        for make in (
            lambda: self.retention_gap("acquisition_channel", "channel"),
            lambda: self.retention_gap("platform", "platform"),
            self.weekday_seasonality,
            self.funnel_drop_off,
            self.dau_trend,
            self.paying_share_shift,
            self.arpu_by_channel,
            self.cohort_month1_trend,
        ):
            finding = make()
            if finding is not None:
                out.append(finding)
        return out

    def retention_gap(self, column: str, label: str) -> Finding | None:
        sql = f"""
SELECT {column}, sum(cohort_users) AS users, sum(retained_users) AS retained, retained / users AS d7_retention
FROM retention_curve_by_segment
WHERE day_n = 7 AND is_observable
GROUP BY {column} HAVING users >= 100
ORDER BY d7_retention DESC"""
        rows = self.query(sql)
        if len(rows) < 2:
            return None
        (best, nb, xb, rb), (worst, nw, xw, rw) = rows[0], rows[-1]
        p = proportions_differ([int(r[2]) for r in rows], [int(r[1]) for r in rows])  # all groups, not best vs worst
        effect = (rb - rw) / rw if rw else 0.0
        target = rw + (rb - rw) / 2  # closing half the gap
        n = sample_size_per_arm(rw, target)
        return Finding(
            key=f"retention_gap_{label}",
            title=f"D7 retention differs by {label}",
            text=(
                f"Users acquired through **{best}** keep coming back: {rb:.1%} are active on day 7 "
                f"({int(xb):,} of {int(nb):,}), against {rw:.1%} for **{worst}** ({int(xw):,} of {int(nw):,}) — "
                f"{(rb - rw) * 100:.1f} points, {effect:.0%} relative."
            )
            if label == "channel"
            else (
                f"On **{best}**, {rb:.1%} of new users are active on day 7 ({int(xb):,} of {int(nb):,}); on "
                f"**{worst}** {rw:.1%} ({int(xw):,} of {int(nw):,}) — {(rb - rw) * 100:.1f} points, {effect:.0%} relative."
            ),
            numbers={"best_rate": rb, "worst_rate": rw, "best_users": nb, "worst_users": nw},
            sql=sql,
            effect=abs(effect),
            p_value=p,
            test=f"chi-square test across {len(rows)} {label}s",
            plot=lambda ax, rows=rows: bars(ax, [r[0] for r in rows], [r[3] for r in rows], "D7 retention", pct=True),
            hypothesis={
                "statement": f"New {worst} users drop off because their first week lacks what {best} users find.",
                "metric": "D7 retention (users active on day 7 / new users)",
                "segment": f"new users with {label} = {worst}",
                "expected": f"{rw:.1%} → {target:.1%} (half the gap to {best})",
                "experiment": (
                    f"A/B test an onboarding sequence (day-1 and day-3 reminders, first-purchase offer) for new {worst} "
                    f"users; {n:,} new users per arm for 80% power at α = 0.05; read D7 retention after 7 days."
                ),
            },
        )

    def weekday_seasonality(self) -> Finding | None:
        sql = """
SELECT toDayOfWeek(metric_date) AS weekday, dau
FROM user_daily_metrics
WHERE is_complete AND metric_date >= (SELECT max(metric_date) FROM user_daily_metrics WHERE is_complete) - 83"""
        rows = self.query(sql)
        if len(rows) < 28:
            return None
        days = np.array([r[0] for r in rows])
        dau = np.array([float(r[1]) for r in rows])
        weekend, weekday = dau[days >= 6], dau[days < 6]
        p = welch(weekend, weekday)
        effect = (weekend.mean() - weekday.mean()) / weekday.mean()
        higher = "higher" if effect > 0 else "lower"
        names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
        means = [float(dau[days == d].mean()) for d in range(1, 8)]
        return Finding(
            key="weekday_seasonality",
            title=f"Weekends are {higher}",
            text=(
                f"Over the last 12 weeks, DAU averages {weekend.mean():,.0f} on Saturdays and Sundays and "
                f"{weekday.mean():,.0f} on weekdays: {abs(effect):.0%} {higher}. Forecasts and week-over-week "
                "comparisons must compare like days."
            ),
            numbers={"weekend_mean": float(weekend.mean()), "weekday_mean": float(weekday.mean())},
            sql=sql,
            effect=abs(effect),
            p_value=p,
            test="Welch's t-test on daily DAU",
            plot=lambda ax: bars(ax, names, means, "mean DAU"),
            hypothesis=None,
        )

    def funnel_drop_off(self) -> Finding | None:
        sql = """
SELECT sum(funnel_viewers) AS viewers, sum(funnel_carters) AS carters, sum(funnel_purchasers) AS purchasers
FROM segments_daily
WHERE is_complete AND activity_date >= (SELECT max(activity_date) FROM segments_daily WHERE is_complete) - 27"""
        [(v, c, pu)] = self.query(sql)
        if not v or not c:
            return None
        v2c, c2p = c / v, pu / c
        step, rate, other = ("view → cart", v2c, c2p) if v2c < c2p else ("cart → purchase", c2p, v2c)
        p = two_proportions(int(c), int(v), int(pu), int(c))
        effect = (other - rate) / rate if rate else 0.0
        base, n_at_step = rate, int(v) if step == "view → cart" else int(c)
        target = base * 1.10
        n = sample_size_per_arm(base, target)
        return Finding(
            key="funnel_drop_off",
            title=f"The funnel leaks most at {step}",
            text=(
                f"In the last 28 complete days, {v2c:.1%} of viewers added to cart ({int(c):,} of {int(v):,} user-days) "
                f"and {c2p:.1%} of carters bought ({int(pu):,} of {int(c):,}): the {step} step converts "
                f"{effect:.0%} worse than the other."
            ),
            numbers={"view_to_cart": v2c, "cart_to_purchase": c2p, "viewers": v, "carters": c, "purchasers": pu},
            sql=sql,
            effect=abs(effect),
            p_value=p,
            test="two-proportion z-test",
            plot=lambda ax: bars(ax, ["viewed", "carted", "purchased"], [v, c, pu], "user-days"),
            hypothesis={
                "statement": f"Friction at the {step} step costs conversions that a simpler step would keep.",
                "metric": f"{step} conversion (users reaching the next step / users at this step, per day)",
                "segment": f"all users reaching the {step.split(' → ')[0]} step ({n_at_step:,} user-days in 28 days)",
                "expected": f"{base:.1%} → {target:.1%} (+10% relative)",
                "experiment": (
                    f"A/B test a shorter {step} step (one-click add to cart / express checkout); {n:,} users per arm "
                    "for 80% power at α = 0.05."
                ),
            },
        )

    def dau_trend(self) -> Finding | None:
        sql = """
SELECT metric_date, dau
FROM user_daily_metrics
WHERE is_complete AND metric_date > (SELECT max(metric_date) FROM user_daily_metrics WHERE is_complete) - 56
ORDER BY metric_date"""
        rows = self.query(sql)
        if len(rows) < 56:
            return None
        dau = np.array([float(r[1]) for r in rows])
        before, after = dau[:28], dau[28:]
        effect = (after.mean() - before.mean()) / before.mean()
        direction = "grew" if effect > 0 else "fell"
        return Finding(
            key="dau_trend",
            title=f"DAU {direction} over the last four weeks",
            text=(
                f"Mean DAU of the last 28 complete days is {after.mean():,.0f}, against {before.mean():,.0f} in the "
                f"28 days before: {effect:+.0%}."
            ),
            numbers={"last_28": float(after.mean()), "previous_28": float(before.mean())},
            sql=sql,
            effect=abs(effect),
            p_value=welch(after, before),
            test="Welch's t-test on daily DAU",
            plot=lambda ax: series(ax, [r[0] for r in rows], dau, "DAU"),
        )

    def paying_share_shift(self) -> Finding | None:
        sql = """
SELECT activity_date > (SELECT max(activity_date) FROM segments_daily WHERE is_complete) - 28 AS recent,
       sum(active_users) AS user_days, sum(paying_users) AS paying, sum(toFloat64(revenue_usd)) AS revenue
FROM segments_daily
WHERE is_complete AND activity_date > (SELECT max(activity_date) FROM segments_daily WHERE is_complete) - 56
GROUP BY recent ORDER BY recent"""
        rows = self.query(sql)
        if len(rows) != 2:
            return None
        (_, n0, x0, r0), (_, n1, x1, r1) = rows
        s0, s1 = x0 / n0, x1 / n1
        arpu0, arpu1, arppu0, arppu1 = r0 / n0, r1 / n1, r0 / x0, r1 / x1
        effect = (s1 - s0) / s0
        return Finding(
            key="paying_share_shift",
            title="ARPU and ARPPU moved apart" if (arpu1 - arpu0) * (arppu1 - arppu0) < 0 else "Paying share moved",
            text=(
                f"Last 28 days vs the 28 before: paying share {s0:.2%} → {s1:.2%} ({effect:+.0%}), ARPU "
                f"${arpu0:.2f} → ${arpu1:.2f}, ARPPU ${arppu0:.2f} → ${arppu1:.2f}. "
                + ("ARPU follows how many users pay, not how much payers spend." if abs(effect) > 0.05 else "")
            ),
            numbers={"share_before": s0, "share_after": s1, "arpu_before": arpu0, "arpu_after": arpu1},
            sql=sql,
            effect=abs(effect),
            p_value=two_proportions(int(x1), int(n1), int(x0), int(n0)),
            test="two-proportion z-test",
            plot=lambda ax: bars(ax, ["previous 28 d", "last 28 d"], [s0, s1], "paying share", pct=True),
            hypothesis={
                "statement": "More active users would pay if the first purchase were easier to make.",
                "metric": "paying share (paying users / active users per day)",
                "segment": "active users who never bought",
                "expected": f"{s1:.2%} → {s1 * 1.1:.2%} (+10% relative)",
                "experiment": (
                    f"A/B test a first-purchase discount for never-paying active users; {sample_size_per_arm(s1, s1 * 1.1):,} "
                    "users per arm for 80% power at α = 0.05; guard metric: ARPPU."
                ),
            },
        )

    def arpu_by_channel(self) -> Finding | None:
        sql = """
SELECT acquisition_channel, activity_date, sum(toFloat64(revenue_usd)) / sum(active_users) AS arpu
FROM segments_daily
WHERE is_complete
GROUP BY acquisition_channel, activity_date"""
        rows = self.query(sql)
        by: dict[str, list[float]] = {}
        for ch, _, arpu in rows:
            by.setdefault(ch, []).append(float(arpu))
        if len(by) < 2:
            return None
        means = {k: float(np.mean(v)) for k, v in by.items() if len(v) >= 28}
        if len(means) < 2:
            return None
        best = max(means, key=means.get)  # type: ignore[arg-type]
        worst = min(means, key=means.get)  # type: ignore[arg-type]
        effect = (means[best] - means[worst]) / means[worst]
        return Finding(
            key="arpu_by_channel",
            title="Revenue per user depends on the acquisition channel",
            text=(
                f"Daily ARPU of **{best}** users averages ${means[best]:.2f}, of **{worst}** users "
                f"${means[worst]:.2f} ({effect:.0%} more)."
            ),
            numbers={"best_arpu": means[best], "worst_arpu": means[worst]},
            sql=sql,
            effect=abs(effect),
            p_value=means_differ([np.array(by[k]) for k in means]),  # all channels, not best vs worst
            test=f"Welch's ANOVA on daily ARPU across {len(means)} channels",
            plot=lambda ax: bars(ax, list(means), list(means.values()), "mean daily ARPU ($)"),
            hypothesis={
                "statement": f"Shifting acquisition spend towards {best} raises revenue per acquired user.",
                "metric": "30-day revenue per acquired user",
                "segment": f"new users from {best} vs {worst}",
                "expected": f"ARPU of the new-user mix moves towards ${means[best]:.2f}",
                "experiment": (
                    f"Geo-split test: move 20% of {worst} budget to {best} in half of the markets for 4 weeks and compare "
                    "30-day revenue per acquired user."
                ),
            },
        )

    def cohort_month1_trend(self) -> Finding | None:
        sql = """
SELECT cohort_month, sum(cohort_size) AS users, sum(active_users) AS retained
FROM cohorts_monthly_by_segment
WHERE months_since_first = 1 AND is_complete
GROUP BY cohort_month ORDER BY cohort_month"""
        rows = self.query(sql)
        if len(rows) < 2:
            return None
        (m0, n0, x0), (m1, n1, x1) = rows[0], rows[-1]
        r0, r1 = x0 / n0, x1 / n1
        effect = (r1 - r0) / r0 if r0 else 0.0
        return Finding(
            key="cohort_month1_trend",
            title="Month-1 retention of newer cohorts " + ("improved" if effect > 0 else "worsened"),
            text=(
                f"{r1:.1%} of the {m1:%B %Y} cohort came back in its second month ({int(x1):,} of {int(n1):,}), "
                f"against {r0:.1%} of the {m0:%B %Y} cohort ({int(x0):,} of {int(n0):,})."
            ),
            numbers={"first_rate": r0, "last_rate": r1},
            sql=sql,
            effect=abs(effect),
            p_value=two_proportions(int(x1), int(n1), int(x0), int(n0)),
            test="two-proportion z-test",
            plot=lambda ax: bars(ax, [f"{r[0]:%Y-%m}" for r in rows], [r[2] / r[1] for r in rows], "month-1 retention", pct=True),
        )


def choose(candidates: list[Finding]) -> tuple[list[Finding], list[Finding]]:
    """The 3 insights: the significant findings by relative effect, then (when fewer than 3 are) the
    strongest leads by p-value, which the memo marks as such; the 2 hypotheses: the significant
    findings with an experiment template, else the templates with the most evidence.
    Significant = Holm-adjusted p < ALPHA over all candidates: the memo tests many things at once."""
    for f, adjusted in zip(candidates, holm([f.p_value for f in candidates]), strict=True):
        f.p_adjusted = adjusted
    ranked = sorted((f for f in candidates if f.significant), key=lambda f: (-f.effect, f.p_value))
    leads = sorted((f for f in candidates if not f.significant), key=lambda f: (f.p_value, -f.effect))
    insights = (ranked + leads)[:3]
    hypotheses = [f for f in ranked if f.hypothesis][:2]
    if len(hypotheses) < 2:  # too little signal: the strongest templates still say what to test next
        rest = sorted((f for f in candidates if f.hypothesis and f not in hypotheses), key=lambda f: (f.p_value, -f.effect))
        hypotheses += rest[: 2 - len(hypotheses)]
    return insights, hypotheses
