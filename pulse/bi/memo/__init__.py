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

from pulse.bi.memo.findings import Candidates, Finding, choose
from pulse.bi.memo.render import Memo, write
from pulse.bi.memo.stats import ALPHA, POWER, sample_size_per_arm
from pulse.config import DEMO_SOURCE, Settings

__all__ = ["ALPHA", "POWER", "Candidates", "Finding", "Memo", "build", "choose", "sample_size_per_arm", "write"]


def build(settings: Settings, source: str = DEMO_SOURCE) -> Memo:
    from pulse.common.clickhouse import client

    ch = settings.clickhouse
    # the BI role: the memo reads exactly what the dashboards can read
    conn = client(ch, username=ch.bi_user, password=ch.bi_password, database=ch.marts_database(source))
    candidates = Candidates(lambda sql: conn.query(sql).result_rows).all()
    [(as_of,)] = conn.query("SELECT max(metric_date) FROM user_daily_metrics WHERE is_complete").result_rows
    insights, hypotheses = choose(candidates)
    return Memo(source, str(as_of), insights, hypotheses, candidates)
