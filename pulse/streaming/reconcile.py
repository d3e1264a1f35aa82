"""``pulse stream reconcile``: the same events through the batch path and through Kafka must give
the same DAU and the same events per type for a day. Any difference is listed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from pulse.common.clickhouse import client as ch_client
from pulse.config import Settings
from pulse.streaming import tables


@dataclass
class Reconciliation:
    day: date
    source: str
    dau_batch: int | None
    dau_stream: int | None
    events: dict[str, tuple[int, int]] = field(default_factory=dict)  # event type -> (batch, stream)

    @property
    def differences(self) -> list[str]:
        out = []
        if self.dau_batch != self.dau_stream:
            out.append(f"DAU: batch {self.dau_batch} vs stream {self.dau_stream}")
        out += [f"{t} events: batch {b:,} vs stream {s:,}" for t, (b, s) in sorted(self.events.items()) if b != s]
        return out

    @property
    def ok(self) -> bool:
        return self.dau_batch is not None and not self.differences

    def report(self) -> str:
        lines = [f"{self.day} · batch source {self.source} vs realtime tables"]
        dash = lambda v: "-" if v is None else f"{v:,}"  # noqa: E731
        lines.append(f"  {'DAU':<14} batch {dash(self.dau_batch):>10}   stream {dash(self.dau_stream):>10}")
        for t, (b, s) in sorted(self.events.items()):
            lines.append(f"  {t:<14} batch {b:>10,}   stream {s:>10,}{'' if b == s else '   <- differs'}")
        lines.append("  MATCH: no difference" if self.ok else f"  {len(self.differences) or 1} difference(s)")
        return "\n".join(lines)


def reconcile(settings: Settings, day: date, source: str) -> Reconciliation:
    marts = ch_client(settings.clickhouse, database=settings.clickhouse.marts_database(source))
    live = tables.client(settings)
    dau_batch = marts.query("SELECT dau FROM user_daily_metrics WHERE metric_date = {d:Date}", parameters={"d": day}).result_rows
    dau_stream = live.query("SELECT dau FROM realtime_dau WHERE day = {d:Date}", parameters={"d": day}).result_rows
    batch = dict(
        marts.query("SELECT event_type, events FROM events_daily WHERE event_date = {d:Date}", parameters={"d": day}).result_rows
    )
    stream = dict(
        live.query(
            "SELECT event_type, events FROM realtime_events_per_day WHERE day = {d:Date}", parameters={"d": day}
        ).result_rows
    )
    return Reconciliation(
        day=day,
        source=source,
        dau_batch=dau_batch[0][0] if dau_batch else None,
        dau_stream=dau_stream[0][0] if dau_stream else None,
        events={t: (int(batch.get(t, 0)), int(stream.get(t, 0))) for t in sorted(set(batch) | set(stream))},
    )
