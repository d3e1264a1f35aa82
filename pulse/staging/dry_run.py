"""A dry run of a source spec on a user's files: what the cleaning job would make of them, before
anything is written — the first mapped rows, each field's empty share, the rows each filter leaves
out, what each rule would quarantine (with examples), and which roles found events."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import functions as F

from pulse.lake import workbook
from pulse.sources.compile import compile_spec
from pulse.sources.spec import Spec
from pulse.staging import raw_reader
from pulse.staging.rules import apply_duplicates, check_rows, find_duplicates, kept

EXAMPLES = 3


@dataclass
class Report:
    spec: Spec
    rows: int
    filtered: dict[str, int]
    quarantined: dict[str, int]
    examples: dict[str, list[str]]  # rule -> details of a few rows it took
    empty: dict[str, float]  # field -> share of kept rows where it is empty
    event_types: dict[str, int]  # among clean rows
    roles: dict[str, int]  # role -> clean events it selects
    first: list[dict] = field(default_factory=list)  # the first clean events, as the job normalises them
    first_day: str | None = None
    last_day: str | None = None

    @property
    def clean(self) -> int:
        return self.rows - sum(self.filtered.values()) - sum(self.quarantined.values())

    def warnings(self) -> list[str]:
        out = []
        if self.spec.roles.revenue and not self.roles.get("revenue"):
            out.append("no revenue events: the revenue marts will be zero")
        missing = [step for step in self.spec.roles.funnel if not self.event_types.get(step)]
        if missing:
            out.append(f"funnel steps without events: {', '.join(missing)} (event types seen: {', '.join(self.event_types)})")
        if self.rows and not self.clean:
            out.append("no row would load: look at the quarantine reasons")
        return out


def check(spark, spec: Spec, paths: list[Path], rows: int | None = 10_000) -> Report:
    """Read ``paths`` as the job reads RAW, apply ``spec`` to the first ``rows`` records (all: None)."""
    with tempfile.TemporaryDirectory(prefix="pulse-check-") as scratch:
        if spec.input.format == "xlsx":  # as ingest converts it; the first rows of each workbook are enough here
            out = [Path(scratch) / f"{i}-{p.stem}.csv" for i, p in enumerate(paths)]
            paths = [workbook.to_csv(p, o, spec.input.sheets, rows) for p, o in zip(paths, out, strict=True)]
        raw = raw_reader.read_local(spark, paths, spec.input.columns, raw_reader.dialect_of(spec.input), spec.input.raw_format)
        if rows is not None:
            raw = raw.orderBy("_file", "_row").limit(rows)
        compiled = compile_spec(spark, spec, raw, inputs=spec.input.columns or None)
        checked = check_rows(raw, compiled).cache()
        judged = kept(checked)
        classified = apply_duplicates(judged, find_duplicates(judged)).cache()
        clean = classified.filter(F.col("rule").isNull())
        try:
            return _report(spec, checked, classified, clean)
        finally:
            checked.unpersist()
            classified.unpersist()


def _counts(frame, column: str) -> dict[str, int]:
    return {r[column]: r["count"] for r in frame.groupBy(column).count().orderBy(F.desc("count")).collect()}


def _report(spec: Spec, checked, classified, clean) -> Report:
    bad = classified.filter(F.col("rule").isNotNull())
    quarantined = _counts(bad, "rule")
    examples = {
        rule: [r.detail or "" for r in bad.filter(F.col("rule") == rule).orderBy("_file", "_row").limit(EXAMPLES).collect()]
        for rule in quarantined
    }
    fields = [f"n_{f}" for f in ("event_type", "user_id", "user_session", "product_id", "price", "platform", "country")]
    shares = clean.select(*[F.avg(F.col(c).isNull().cast("double")).alias(c) for c in fields]).first()
    types = _counts(clean, "n_event_type")
    roles = {
        "active": sum(n for t, n in types.items() if spec.roles.active is None or t in spec.roles.active),
        "funnel": sum(n for t, n in types.items() if t in spec.roles.funnel),
        "revenue": sum(n for t, n in types.items() if t in spec.roles.revenue),
        "refund": sum(n for t, n in types.items() if t in spec.roles.refund),
    }
    days = clean.select(F.min(F.to_date("n_event_ts")).alias("lo"), F.max(F.to_date("n_event_ts")).alias("hi")).first()
    # the time formatted by Spark (its session zone is UTC): PySpark would show a collected one in the host's zone
    when = F.date_format("n_event_ts", "yyyy-MM-dd HH:mm:ss 'UTC'").alias("n_event_time")
    shown = [when, "n_event_type", "n_user_id", "n_user_session", "n_product_id", "n_price", "n_currency", "_properties"]
    return Report(
        spec=spec,
        rows=checked.count(),
        filtered=_counts(checked.filter(F.col("_filtered").isNotNull()), "_filtered"),
        quarantined=quarantined,
        examples=examples,
        empty={c.removeprefix("n_"): float(shares[c] or 0.0) for c in fields} if shares else {},
        event_types=types,
        roles={k: v for k, v in roles.items() if v or k != "refund"},
        first=[r.asDict() for r in clean.orderBy("_file", "_row").select(*shown).limit(5).collect()],
        first_day=str(days["lo"]) if days["lo"] else None,
        last_day=str(days["hi"]) if days["hi"] else None,
    )
