"""The analytical memo: 3 insights and 2 hypotheses, chosen by the data.

Each candidate finding is one query on the published marts (run with the read-only BI role, the
same data the dashboards show), an effect size and a significance test:
  * differences of proportions (retention, conversion, paying share): two-proportion z-test;
  * differences of daily means (weekday seasonality, trend, ARPU by channel): Welch's t-test.
Candidates with p < 0.05 are ranked by |relative effect| (the size of the difference relative to
the baseline), the top 3 become insights; the 2 strongest candidates that have an experiment
template become hypotheses, with the metric, the segment, the expected effect and the A/B test
(sample size per arm for 80 % power at alpha 0.05). Another dataset gives other numbers, other
ranks and therefore another memo.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

from pulse.config import DEMO_SOURCE, Settings

ALPHA = 0.05
POWER = 0.8


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

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA


@dataclass
class Memo:
    source: str
    as_of: str
    insights: list[Finding]
    hypotheses: list[Finding]
    candidates: list[Finding] = field(default_factory=list)

    def dashboard_markdown(self) -> str:
        """The memo as the main dashboard shows it: without the SQL, pointing to where the SQL is."""
        return self.markdown(with_sql=False) + f"\n\n_Queries behind every number: `pulse report memo --source {self.source}`._"

    def markdown(self, with_sql: bool = True) -> str:
        out = [f"# Pulse memo — source `{self.source}`, data through {self.as_of}", ""]
        out.append(
            f"Chosen from {len(self.candidates)} candidate findings: significant at p < {ALPHA} and ranked by "
            "relative effect size (two-proportion z-test for rates, Welch's t-test for daily means)."
        )
        out += ["", "## Insights", ""]
        for i, f in enumerate(self.insights, 1):
            out.append(f"**{i}. {f.title}.** {f.text} _(effect {f.effect:.0%}, {f.test}, p {_p(f.p_value)})_")
            if with_sql:
                out += ["", "```sql", f.sql.strip(), "```"]
            out.append("")
        out += ["## Hypotheses", ""]
        for i, f in enumerate(self.hypotheses, 1):
            h = f.hypothesis or {}
            out.append(f"**H{i}. {h['statement']}** Evidence: {f.text}")
            out += [
                f"- metric: {h['metric']}",
                f"- segment: {h['segment']}",
                f"- expected effect: {h['expected']}",
                f"- experiment: {h['experiment']}",
                "",
            ]
        return "\n".join(out)


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def _two_proportions(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p-value of a two-proportion z-test (pooled variance)."""
    if min(n1, n2) == 0:
        return 1.0
    p = (x1 + x2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (x1 / n1 - x2 / n2) / se
    return float(2 * stats.norm.sf(abs(z)))


def sample_size_per_arm(p1: float, p2: float) -> int:
    """Users per arm to detect p1 -> p2 with a two-sided test at ALPHA with POWER."""
    if p1 == p2:
        return 0
    za, zb = stats.norm.ppf(1 - ALPHA / 2), stats.norm.ppf(POWER)
    pbar = (p1 + p2) / 2
    n = (za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2 / (p1 - p2) ** 2
    return math.ceil(n)


def _welch(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or len(b) < 2:
        return 1.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


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
        p = _two_proportions(int(xb), int(nb), int(xw), int(nw))
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
            test="two-proportion z-test",
            plot=lambda ax, rows=rows: _bars(ax, [r[0] for r in rows], [r[3] for r in rows], "D7 retention", pct=True),
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
        p = _welch(weekend, weekday)
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
            plot=lambda ax: _bars(ax, names, means, "mean DAU"),
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
        p = _two_proportions(int(c), int(v), int(pu), int(c))
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
            plot=lambda ax: _bars(ax, ["viewed", "carted", "purchased"], [v, c, pu], "user-days"),
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
            p_value=_welch(after, before),
            test="Welch's t-test on daily DAU",
            plot=lambda ax: _series(ax, [r[0] for r in rows], dau, "DAU"),
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
            p_value=_two_proportions(int(x1), int(n1), int(x0), int(n0)),
            test="two-proportion z-test",
            plot=lambda ax: _bars(ax, ["previous 28 d", "last 28 d"], [s0, s1], "paying share", pct=True),
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
            p_value=_welch(np.array(by[best]), np.array(by[worst])),
            test="Welch's t-test on daily ARPU",
            plot=lambda ax: _bars(ax, list(means), list(means.values()), "mean daily ARPU ($)"),
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
            p_value=_two_proportions(int(x1), int(n1), int(x0), int(n0)),
            test="two-proportion z-test",
            plot=lambda ax: _bars(
                ax, [f"{r[0]:%Y-%m}" for r in rows], [r[2] / r[1] for r in rows], "month-1 retention", pct=True
            ),
        )


def _bars(ax, labels, values, ylabel: str, pct: bool = False) -> None:
    ax.bar([str(x) for x in labels], values, color="#1f77b4")
    ax.set_ylabel(ylabel)
    if pct:
        ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.tick_params(axis="x", labelrotation=30)


def _series(ax, x, y, ylabel: str) -> None:
    ax.plot(x, y, color="#1f77b4")
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", labelrotation=30)


def choose(candidates: list[Finding]) -> tuple[list[Finding], list[Finding]]:
    """Top 3 significant findings by relative effect; top 2 with an experiment template as hypotheses."""
    ranked = sorted((f for f in candidates if f.significant), key=lambda f: (-f.effect, f.p_value))
    insights = ranked[:3]
    hypotheses = [f for f in ranked if f.hypothesis][:2]
    if len(hypotheses) < 2:  # too little signal: the strongest templates still say what to test next
        rest = sorted((f for f in candidates if f.hypothesis and f not in hypotheses), key=lambda f: (f.p_value, -f.effect))
        hypotheses += rest[: 2 - len(hypotheses)]
    return insights, hypotheses


def build(settings: Settings, source: str = DEMO_SOURCE) -> Memo:
    from pulse.common.clickhouse import client

    ch = settings.clickhouse
    # the BI role: the memo reads exactly what the dashboards can read
    conn = client(ch, username=ch.bi_user, password=ch.bi_password, database=ch.marts_database(source))
    candidates = Candidates(lambda sql: conn.query(sql).result_rows).all()
    [(as_of,)] = conn.query("SELECT max(metric_date) FROM user_daily_metrics WHERE is_complete").result_rows
    insights, hypotheses = choose(candidates)
    return Memo(source, str(as_of), insights, hypotheses, candidates)


def _figure_png(finding: Finding) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3), dpi=100)
    finding.plot(ax)  # type: ignore[misc]
    ax.set_title(finding.title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _md_inline(text: str) -> str:
    """The memo's Markdown subset (**bold**, `code`, _italic_) as HTML."""
    import re

    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    text = re.sub(r"`(.+?)`", r"<code>\1</code>", text)
    return re.sub(r"(?<!\w)_(.+?)_(?!\w)", r"<i>\1</i>", text)


def write(memo: Memo, out_dir: Path) -> tuple[Path, Path]:
    """memo.md and a self-contained memo.html (charts embedded as data URIs)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path, html_path = out_dir / "memo.md", out_dir / "memo.html"
    md_path.write_text(memo.markdown())
    parts = [
        "<!doctype html><meta charset='utf-8'><title>Pulse memo</title>",
        "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:900px;margin:2em auto;padding:0 1em}"
        "pre{background:#f5f5f5;padding:.6em;overflow:auto;font-size:12px}img{max-width:100%}</style>",
        f"<h1>Pulse memo — source <code>{html.escape(memo.source)}</code>, data through {memo.as_of}</h1>",
        f"<p>Chosen from {len(memo.candidates)} candidate findings: significant at p &lt; {ALPHA}, ranked by relative "
        "effect size (two-proportion z-test for rates, Welch's t-test for daily means).</p><h2>Insights</h2>",
    ]
    for i, f in enumerate(memo.insights, 1):
        parts.append(f"<h3>{i}. {html.escape(f.title)}</h3><p>{_md_inline(f.text)}</p>")
        parts.append(f"<p><small>effect {f.effect:.0%} · {f.test} · p {_p(f.p_value)}</small></p>")
        if f.plot:
            parts.append(f"<img alt='{html.escape(f.title)}' src='data:image/png;base64,{_figure_png(f)}'>")
        parts.append(f"<pre>{html.escape(f.sql.strip())}</pre>")
    parts.append("<h2>Hypotheses</h2>")
    for i, f in enumerate(memo.hypotheses, 1):
        h = f.hypothesis or {}
        parts.append(f"<h3>H{i}. {html.escape(h['statement'])}</h3><p>Evidence: {_md_inline(f.text)}</p><ul>")
        for label in ("metric", "segment", "expected", "experiment"):
            parts.append(f"<li><b>{label}</b>: {html.escape(h[label])}</li>")
        parts.append("</ul>")
        if f.plot and f not in memo.insights:
            parts.append(f"<img alt='{html.escape(f.title)}' src='data:image/png;base64,{_figure_png(f)}'>")
    html_path.write_text("\n".join(parts))
    return md_path, html_path
