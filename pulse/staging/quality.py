"""The data-quality summary of a load: what came in, what was kept, what was quarantined and why."""

from __future__ import annotations

from pulse.common import pg
from pulse.config import PostgresConfig


def last_run(cfg: PostgresConfig, source: str) -> dict | None:
    with pg.connect(cfg) as conn:
        row = conn.execute(
            "select run_id, status, started_at, finished_at, ingest_dates, rows_in, rows_out, rows_quarantined, "
            "spark_seconds, load_seconds, error, mode, mode_reason from staging.load_runs where source = %s "
            "order by started_at desc limit 1",
            (source,),
        ).fetchone()
        if row is None:
            return None
        keys = [
            "run_id",
            "status",
            "started_at",
            "finished_at",
            "ingest_dates",
            "rows_in",
            "rows_out",
            "rows_quarantined",
            "spark_seconds",
            "load_seconds",
            "error",
            "mode",
            "mode_reason",
        ]
        run = dict(zip(keys, row, strict=True))
        run["rules"] = dict(
            conn.execute(
                "select rule, rows from staging.load_run_rules where run_id = %s order by rows desc", (run["run_id"],)
            ).fetchall()
        )
        # what the source holds now (after an incremental load, more than this load brought)
        run["source_events"] = conn.execute("select count(*) from staging.events where source = %s", (source,)).fetchone()[0]
        run["source_rules"] = dict(
            conn.execute("select rule, count(*) from staging.quarantine where source = %s group by rule", (source,)).fetchall()
        )
        run["revenue_usd"] = conn.execute(
            "select coalesce(sum(revenue_usd), 0) from staging.daily_revenue where source = %s", (source,)
        ).fetchone()[0]
        run["examples"] = {
            rule: detail
            for rule, detail in conn.execute(
                "select distinct on (rule) rule, detail from staging.quarantine where source = %s order by rule, row_number",
                (source,),
            )
        }
    return run


def render(run: dict, truth: dict | None = None) -> str:
    lines = [f"Data quality — run {run['run_id']} ({run['status']})"]
    if run["status"] != "succeeded":
        lines.append(f"  error: {run['error']}")
        return "\n".join(lines)
    total = run["rows_in"] or 1
    lines += [
        f"  load             {'full refresh' if run['mode'] == 'full' else 'incremental'}: {run['mode_reason']}",
        f"  rows in          {run['rows_in']:>12,}   from {run['ingest_dates']} ingest dates",
        f"  rows kept        {run['rows_out']:>12,}   {100 * run['rows_out'] / total:6.2f}%",
        f"  rows quarantined {run['rows_quarantined']:>12,}   {100 * run['rows_quarantined'] / total:6.2f}%",
        f"  source now       {run['source_events']:>12,}   events in staging",
        f"  revenue (USD)    {run['revenue_usd']:>12,}",
        "  quarantine by rule, all loads:" + ("   (expected from ground truth)" if truth else ""),
    ]
    for rule, rows in sorted(run["source_rules"].items(), key=lambda kv: -kv[1]):
        expect = f"   ({truth['quarantined'].get(rule, 0):,})" if truth else ""
        example = run["examples"].get(rule) or ""
        lines.append(f"    {rule:<24}{rows:>10,}{expect}   e.g. {example[:60]}")
    if truth:
        ok = (
            run["source_events"] == truth["clean_events"]
            and run["source_rules"] == {k: v for k, v in truth["quarantined"].items() if v}
            and str(run["revenue_usd"]) == truth["revenue_usd"]
        )
        lines.append(f"  matches the generator's ground truth: {'yes' if ok else 'NO'}")
    lines.append(f"  timings: spark {run['spark_seconds']:.1f}s, load {run['load_seconds']:.1f}s")
    return "\n".join(lines)
