"""The KPI block of the last complete day, read back from a source's published marts (the demo prints it as
proof that the whole chain delivered)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pulse.common.clickhouse import client as ch_client
from pulse.config import Settings


@dataclass(frozen=True)
class Kpis:
    database: str
    marts: list[str]
    day: date | None  # None: no complete day yet (every day is after the watermark)
    dau: int = 0
    wau: int = 0
    mau: int = 0
    stickiness: float | None = None
    revenue_usd: float = 0.0
    arpu_usd: float = 0.0
    dau_change_wow: float | None = None  # None: no day a week before
    avg_d1_retention: float | None = None  # None: no cohort's day 1 is complete

    def line(self) -> str:
        def pct(value: float | None, sign: str = "") -> str:
            return "n/a" if value is None or value != value else f"{value:{sign}.1%}"

        if self.day is None:
            return "No complete day yet: every day is after the completeness watermark (late events may still land)."
        return (
            f"Last complete day {self.day}: DAU {self.dau:,} · WAU {self.wau:,} · MAU {self.mau:,} · "
            f"stickiness {pct(self.stickiness)} · revenue ${self.revenue_usd:,.2f} · ARPU ${self.arpu_usd:.2f} · "
            f"DAU vs a week ago {pct(self.dau_change_wow, '+')} · avg D1 retention {pct(self.avg_d1_retention)}"
        )


def read(settings: Settings, source: str) -> Kpis:
    database = settings.clickhouse.marts_database(source)
    client = ch_client(settings.clickhouse, database=database)
    names = "SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name"
    marts = [r[0] for r in client.query(names).result_rows]
    rows = client.query(
        "SELECT metric_date, dau, wau, mau, stickiness, revenue_usd, arpu_usd, dau_change_wow, avg_d1_retention FROM kpi_latest"
    ).result_rows
    if not rows:
        return Kpis(database, marts, None)
    day, dau, wau, mau, stickiness, revenue, arpu, change, d1 = rows[0]
    return Kpis(database, marts, day, dau, wau, mau, stickiness, float(revenue or 0), float(arpu or 0), change, d1)
