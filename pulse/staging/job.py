"""The cleaning job (Spark): RAW (S3) -> clean, quarantine, aggregate -> PostgreSQL staging, audited.

A run is a full refresh of one source: it reads every committed RAW partition of that source
(so dedup sees late copies across ingest dates and daily aggregates see late events), and
replaces the source's staging rows in one transaction. Re-running is therefore idempotent.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, date, datetime, timedelta

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pulse.common import pg
from pulse.common.progress import say, step
from pulse.common.spark import session
from pulse.config import DEMO_SOURCE, PipelineConfig, Settings
from pulse.domain import source_name
from pulse.lake.raw import list_committed, source_spec
from pulse.sources.compile import Compiled, compile_spec
from pulse.sources.spec import Spec
from pulse.staging import load, raw_reader, recovery, transform
from pulse.staging.migrate import migrate
from pulse.staging.rules import apply_duplicates, check_rows, find_duplicates, kept


class LoadCheckError(RuntimeError):
    pass


def check_quality(classified, rows_in: int, rules: dict[str, int], cfg: PipelineConfig) -> None:
    """The data-quality gate, before anything is loaded: too much quarantined overall or by one rule
    means the input (or a mapping) is wrong, and loading it would replace good data with little."""
    quarantined = sum(rules.values())
    worst = max(rules.items(), key=lambda kv: kv[1], default=("", 0))
    total = quarantined / rows_in if rows_in else 0.0
    over_total = total > cfg.max_quarantine_share and quarantined > cfg.gate_min_rows
    over_rule = worst[1] > cfg.max_rule_share * rows_in and worst[1] > cfg.gate_min_rows
    if not (over_total or over_rule):  # a handful of bad rows in a tiny file is no signal
        return
    sample = classified.filter(F.col("rule") == worst[0]).select("detail", "_file", "_row").first()
    raise LoadCheckError(
        f"data-quality gate: {total:.1%} of {rows_in:,} rows quarantined (limit {cfg.max_quarantine_share:.0%}); "
        f"rule {worst[0]} took {worst[1] / rows_in:.1%} (limit {cfg.max_rule_share:.0%}), e.g. {sample['detail']} "
        f"in {sample['_file']} line {sample['_row']}. Nothing was loaded. Fix the input (or raise "
        "PULSE_PIPELINE_MAX_QUARANTINE_SHARE / _MAX_RULE_SHARE if this is expected)."
    )


def check_shrink(cfg, source: str, events: int, max_shrink: float, force: bool) -> None:
    """Refuse a refresh that would drop most of a source (a lost manifest, a wrong prefix) unless forced."""
    with pg.connect(cfg) as conn:
        row = conn.execute(
            "select rows_out from staging.load_runs where source = %s and status = 'succeeded' order by finished_at desc limit 1",
            (source,),
        ).fetchone()
    if row is None or force or events >= (1 - max_shrink) * row[0]:
        return
    raise LoadCheckError(
        f"this refresh would shrink source={source} from {row[0]:,} to {events:,} events "
        f"(more than {max_shrink:.0%} fewer): a lost manifest or a wrong RAW prefix? Nothing was swapped in; "
        "re-run with --force if the source really shrank."
    )


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


def read_raw(spark, settings: Settings, source: str, spec: Spec) -> tuple[DataFrame, Compiled, list[str], int]:
    """The source's RAW records and the spec compiled against their columns (a wrong spec fails here)."""
    files = list_committed(settings.s3, source)
    if not files:
        raise LoadCheckError(f"no committed RAW partitions for source={source} in s3://{settings.s3.raw_bucket}")
    raw = raw_reader.read(spark, settings.s3, files, spec.input.columns, raw_reader.dialect_of(spec.input), spec.input.raw_format)
    compiled = compile_spec(spark, spec, raw, inputs=spec.input.columns or None)
    return raw, compiled, sorted({f.ingest_date for f in files}), len(files)


def run(settings: Settings, source: str = DEMO_SOURCE, spark=None, force: bool = False) -> dict:
    """Run the job; returns the audit summary. Raises (and records a failed run) on any error."""
    source_name(source)
    cfg = settings.postgres
    migrate(cfg)
    try:
        with recovery.source_lock(cfg, source):  # one run per source at a time: two would race at the swap
            for run_id in recovery.recover_dead_runs(cfg, source):
                say(f"    recovered dead run {run_id}: marked failed, its load tables dropped")
            return _guarded_run(settings, source, spark, force)
    except recovery.SourceBusy as exc:
        raise LoadCheckError(str(exc)) from None


def _guarded_run(settings: Settings, source: str, spark, force: bool) -> dict:
    cfg = settings.postgres
    run_id = new_run_id()
    with pg.connect(cfg, autocommit=True) as conn:
        conn.execute("insert into staging.load_runs (run_id, source, status) values (%s, %s, 'running')", (run_id, source))
    say(f"==> clean job run {run_id} (source={source})")
    # a session this run creates is stopped at its end; one that was already running is not ours to stop
    own_spark = spark is None and SparkSession.getActiveSession() is None
    spark = spark or session(settings, f"pulse-clean-{source}")
    t0 = time.perf_counter()
    try:
        summary = _run(spark, settings, source, run_id, force)
        summary["seconds"] = round(time.perf_counter() - t0, 2)
        return summary
    except Exception as exc:
        with pg.connect(cfg, autocommit=True) as conn:
            conn.execute(
                "update staging.load_runs set status = 'failed', finished_at = now(), error = %s where run_id = %s",
                (f"{type(exc).__name__}: {exc}"[:4000], run_id),
            )
        raise
    finally:
        load.drop_load_tables(cfg, load.TABLES, run_id)
        if own_spark:
            spark.stop()


Frames = tuple[DataFrame, DataFrame, dict[str, DataFrame], list[DataFrame]]


def _frames(raw, compiled: Compiled, source: str, run_id: str) -> Frames:
    """The rules, dedup and every staging table as lazy frames: (checked rows, classified rows, table -> frame,
    the cached frames to unpersist). The checked rows include those the spec's filters leave out."""
    # the checked rows are scanned by every output; the dedup losers are small. Both are cached so
    # S3 is read and the rules evaluated once; ``classified`` is a cheap broadcast join over them.
    checked = check_rows(raw, compiled).persist(StorageLevel.MEMORY_AND_DISK)
    losers = find_duplicates(kept(checked)).persist(StorageLevel.MEMORY_AND_DISK)
    classified = apply_duplicates(kept(checked), losers)
    events = transform.clean_events(classified, source, run_id).persist(StorageLevel.MEMORY_AND_DISK)
    roles = compiled.spec.roles
    users = transform.users(events, roles).persist(StorageLevel.MEMORY_AND_DISK)
    frames = {
        "events": events,
        "quarantine": transform.quarantine(classified, source, run_id),
        "users": users,
        "products": transform.products(events, roles),
        "daily_event_counts": transform.daily_event_counts(events),
        "daily_active_users": transform.daily_active_users(events, users, roles),
        "daily_revenue": transform.daily_revenue(events, roles),
    }
    return checked, classified, frames, [users, events, losers, checked]


def _copy(cfg, frames: dict[str, DataFrame], run_id: str) -> tuple[dict[str, int], dict[str, float], float]:
    """Every table COPYed into its per-run load table: (rows per table, seconds per table, seconds in all)."""
    counts: dict[str, int] = {}
    table_seconds: dict[str, float] = {}
    with step("load: COPY into staging_load") as s:
        for name, frame in frames.items():
            t0 = time.perf_counter()
            counts[name] = load.copy_dataframe(frame, cfg.conninfo(), "staging_load", load.load_table_name(name, run_id), run_id)
            table_seconds[name] = round(time.perf_counter() - t0, 2)
            s.rows += counts[name]
            say(f"    {name}: {counts[name]:,} rows in {table_seconds[name]:.1f}s")
    return counts, table_seconds, s.seconds


def _counts(frame: DataFrame, column: str) -> dict[str, int]:
    return {r[column]: r["count"] for r in frame.groupBy(column).count().collect()}


def _check_accounting(rows_in: int, counts: dict[str, int], quarantined: int, filtered: int) -> None:
    if counts["events"] + counts["quarantine"] + filtered != rows_in or counts["quarantine"] != quarantined:
        raise LoadCheckError(
            f"row accounting broken: in={rows_in} out={counts['events']} "
            f"quarantine={counts['quarantine']} (rules say {quarantined}) filtered={filtered}"
        )


def _record(conn, run_id: str, rules: dict[str, int], counts: dict[str, int], audit: dict) -> None:
    """The run's audit rows and its success, in the swap's transaction."""
    cur = conn.cursor()
    spec: Spec = audit.pop("spec")
    cur.execute(
        "insert into staging.source_specs (spec_version, name, spec) values (%s, %s, %s) on conflict do nothing",
        (spec.version, spec.name, spec.text),
    )
    cur.executemany(
        "insert into staging.load_run_filters (run_id, filter, rows) values (%s, %s, %s)",
        [(run_id, f, n) for f, n in audit.pop("filtered").items()],
    )
    cur.executemany(
        "insert into staging.load_run_rules (run_id, rule, rows) values (%s, %s, %s)",
        [(run_id, r, n) for r, n in rules.items()],
    )
    cur.executemany(
        "insert into staging.load_run_tables (run_id, table_name, rows) values (%s, %s, %s)",
        [(run_id, t, n) for t, n in counts.items()],
    )
    conn.execute(
        "update staging.load_runs set status = 'succeeded', finished_at = now(), ingest_dates = %(ingest_dates)s, "
        "rows_in = %(rows_in)s, rows_out = %(rows_out)s, rows_quarantined = %(rows_quarantined)s, "
        "spark_seconds = %(spark_seconds)s, load_seconds = %(load_seconds)s, max_ingest_date = %(max_ingest_date)s, "
        "complete_through = %(complete_through)s, forced = %(forced)s, spec_name = %(spec_name)s, "
        "spec_version = %(spec_version)s, rows_filtered = %(rows_filtered)s where run_id = %(run_id)s",
        {**audit, "run_id": run_id, "spec_name": spec.name, "spec_version": spec.version},
    )


def _run(spark, settings: Settings, source: str, run_id: str, force: bool) -> dict:
    cfg = settings.postgres
    spec = source_spec(settings.s3, source)  # the spec stored with the RAW files (Pulse's own layout if none)
    raw, compiled, ingest_dates, n_files = read_raw(spark, settings, source, spec)
    max_ingest = date.fromisoformat(ingest_dates[-1])
    complete_through = max_ingest - timedelta(days=settings.pipeline.late_arrival_days)
    say(f"    reading {n_files} RAW objects from {len(ingest_dates)} ingest dates via S3 (complete through {complete_through})")
    if spec.name != "demo":
        say(f"    spec {spec.name} (version {spec.version})")
    checked, classified, frames, cached = _frames(raw, compiled, source, run_id)
    with step("spark: parse, validate, dedup") as s:
        rows_in = checked.count()
        filtered = _counts(checked.filter(F.col("_filtered").isNotNull()), "_filtered")
        rules = _counts(classified.filter(F.col("rule").isNotNull()), "rule")
        s.rows = rows_in
    spark_seconds = s.seconds
    check_quality(classified, rows_in - sum(filtered.values()), rules, settings.pipeline)  # the gate judges kept rows
    load.create_load_tables(cfg, load.TABLES, run_id)
    counts, table_seconds, copy_seconds = _copy(cfg, frames, run_id)
    quarantined = sum(rules.values())
    _check_accounting(rows_in, counts, quarantined, sum(filtered.values()))
    check_shrink(cfg, source, counts["events"], settings.pipeline.max_shrink, force)
    with step("load: index the new partitions (aside)") as s:
        load.index_load_tables(cfg, load.TABLES, run_id)
        load.constrain_load_tables(cfg, load.TABLES, run_id, source)
    index_seconds = s.seconds
    with step("load: swap into staging (one transaction)") as s, pg.connect(cfg) as conn, conn.transaction():
        load.swap_in(conn, load.TABLES, run_id, source)
        _record(conn, run_id, rules, counts, {
            "ingest_dates": len(ingest_dates), "rows_in": rows_in, "rows_out": counts["events"],
            "rows_quarantined": quarantined, "spark_seconds": spark_seconds,
            "load_seconds": copy_seconds + index_seconds + s.seconds, "max_ingest_date": max_ingest,
            "complete_through": complete_through, "forced": force, "spec": spec, "filtered": filtered,
            "rows_filtered": sum(filtered.values()),
        })  # fmt: skip
    for frame in cached:
        frame.unpersist()
    return {
        "run_id": run_id,
        "source": source,
        "rows_in": rows_in,
        "rows_out": counts["events"],
        "complete_through": complete_through.isoformat(),
        "quarantined": dict(sorted(rules.items())),
        "filtered": dict(sorted(filtered.items())),
        "spec": f"{spec.name} {spec.version}",
        "tables": counts,
        "spark_seconds": round(spark_seconds, 2),
        "copy_seconds": round(copy_seconds, 2),
        "table_seconds": table_seconds,
        "index_seconds": round(index_seconds, 2),
        "swap_seconds": round(s.seconds, 2),
    }
