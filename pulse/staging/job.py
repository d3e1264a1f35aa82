"""The cleaning job (Spark): RAW (S3) -> clean, quarantine -> PostgreSQL staging, aggregated, audited.

A run is incremental by default: it reads only the RAW files no load since the source's last full
refresh took, dedups them against what staging holds (first arrival wins, across loads as within one),
and adds them in one transaction that also recomputes the aggregates of the keys and days they touch
(``pulse.staging.increment``, ``pulse.staging.aggregates``). A full refresh (asked for, or needed: see
``increment.plan``) reads every committed file and swaps the source's staging partitions in one
transaction. Either way readers see the old or the new state, and re-running is a no-op.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from psycopg import sql
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pulse.common import pg
from pulse.common.progress import say, step
from pulse.common.spark import progress as spark_progress
from pulse.common.spark import session
from pulse.config import DEMO_SOURCE, PipelineConfig, Settings
from pulse.domain import source_name
from pulse.lake.raw import list_committed, source_spec
from pulse.sources.compile import Compiled, compile_spec
from pulse.sources.spec import Spec
from pulse.staging import aggregates, increment, load, raw_reader, recovery, transform
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
        row = conn.execute("select count(*) from staging.events where source = %s", (source,)).fetchone()
    if row[0] == 0 or force or events >= (1 - max_shrink) * row[0]:
        return
    raise LoadCheckError(
        f"this refresh would shrink source={source} from {row[0]:,} to {events:,} events "
        f"(more than {max_shrink:.0%} fewer): a lost manifest or a wrong RAW prefix? Nothing was swapped in; "
        "re-run with --force if the source really shrank."
    )


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


def read_raw(spark, settings: Settings, files: list, spec: Spec) -> tuple[DataFrame, Compiled]:
    """These RAW files' records and the spec compiled against their columns (a wrong spec fails here)."""
    raw = raw_reader.read(spark, settings.s3, files, spec.input.columns, raw_reader.dialect_of(spec.input), spec.input.raw_format)
    return raw, compile_spec(spark, spec, raw, inputs=spec.input.columns or None)


def run(
    settings: Settings,
    source: str = DEMO_SOURCE,
    spark=None,
    force: bool = False,
    full_refresh: bool = False,
    through: date | None = None,
) -> dict:
    """Run the job (incremental unless ``full_refresh`` or a full refresh is needed); returns the audit
    summary. ``through``: leave RAW of later ingest dates to a later load (a daily run of that day).
    Raises (and records a failed run) on any error."""
    source_name(source)
    cfg = settings.postgres
    migrate(cfg)
    try:
        with recovery.source_lock(cfg, source):  # one run per source at a time: two would race at the swap
            for run_id in recovery.recover_dead_runs(cfg, source):
                say(f"    recovered dead run {run_id}: marked failed, its load tables dropped")
            return _guarded_run(settings, source, spark, force, full_refresh, through)
    except recovery.SourceBusy as exc:
        raise LoadCheckError(str(exc)) from None


def _guarded_run(settings: Settings, source: str, spark, force: bool, full_refresh: bool, through: date | None) -> dict:
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
        summary = _run(spark, settings, source, run_id, force, full_refresh, through)
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


@dataclass
class Frames:
    checked: DataFrame  # every row, the rules applied (including those the spec's filters leave out)
    classified: DataFrame  # the kept rows, dedup applied
    tables: dict[str, DataFrame]  # what Spark writes: events and quarantine
    sessions: DataFrame | None  # incremental: earlier events whose derived session is derived again
    losers: DataFrame  # the dedup's losing rows (cached)
    cached: list[DataFrame]


def _frames(spark, settings: Settings, raw, compiled: Compiled, source: str, run_id: str, incremental: bool) -> Frames:
    """The rules, dedup and the events and quarantine as lazy frames. Incremental: the dedup and the derived
    sessions see the earlier loads' events they concern (``pulse.staging.increment``)."""
    # the checked rows are scanned by every output; the dedup losers are small. Both are cached so
    # S3 is read and the rules evaluated once; ``classified`` is a cheap broadcast join over them.
    checked = check_rows(raw, compiled).persist(StorageLevel.MEMORY_AND_DISK)
    judged = kept(checked)
    cfg = settings.postgres
    keys = increment.new_keys(judged) if incremental else None  # one job: the keys both lookups need
    prior = increment.dedup_priors(spark, cfg, source, keys) if incremental else None
    losers = find_duplicates(judged, prior).persist(StorageLevel.MEMORY_AND_DISK)
    classified = apply_duplicates(judged, losers)
    sessions = increment.session_priors(spark, cfg, source, keys) if incremental else None
    events = transform.clean_events(classified, source, run_id, sessions).persist(StorageLevel.MEMORY_AND_DISK)
    changed = None
    if incremental:
        changed = events.filter("_prior").select("event_id", "session_id")
        events = events.filter(~F.col("_prior") | F.col("_prior").isNull()).drop("_prior")
    tables = {"events": events, "quarantine": transform.quarantine(classified, source, run_id)}
    return Frames(checked, classified, tables, changed, losers, [events, losers, checked])


def _copy(cfg, frames: dict[str, DataFrame], run_id: str) -> tuple[dict[str, int], dict[str, float], float]:
    """Every table COPYed into its per-run load table: (rows per table, seconds per table, seconds in all)."""
    counts: dict[str, int] = {}
    table_seconds: dict[str, float] = {}
    spark = next(iter(frames.values())).sparkSession
    with step("load: COPY into staging_load") as s, spark_progress(spark, "COPY"):
        for name, frame in frames.items():
            t0 = time.perf_counter()
            counts[name] = load.copy_dataframe(frame, cfg.conninfo(), "staging_load", load.load_table_name(name, run_id), run_id)
            table_seconds[name] = round(time.perf_counter() - t0, 2)
            s.rows += counts[name]
            say(f"    {name}: {counts[name]:,} rows in {table_seconds[name]:.1f}s")
    return counts, table_seconds, s.seconds


def _tally(frames: Frames) -> tuple[int, dict[str, int], dict[str, int]]:
    """One job over every row: (rows in, rows per filter that leaves them out, rows per quarantine rule). The
    dedup losers are joined to all rows (they match kept rows only), so filtered rows keep no rule."""
    every = apply_duplicates(frames.checked, frames.losers).groupBy("_filtered", "rule").count().collect()
    filtered: dict[str, int] = {}
    rules: dict[str, int] = {}
    for r in every:
        if r["_filtered"] is not None:
            filtered[r["_filtered"]] = filtered.get(r["_filtered"], 0) + r["count"]
        elif r["rule"] is not None:
            rules[r["rule"]] = r["count"]
    return sum(r["count"] for r in every), filtered, rules


def _check_accounting(rows_in: int, counts: dict[str, int], quarantined: int, filtered: int) -> None:
    if counts["events"] + counts["quarantine"] + filtered != rows_in or counts["quarantine"] != quarantined:
        raise LoadCheckError(
            f"row accounting broken: in={rows_in} out={counts['events']} "
            f"quarantine={counts['quarantine']} (rules say {quarantined}) filtered={filtered}"
        )


def _record(conn, run_id: str, rules: dict[str, int], counts: dict[str, int], audit: dict) -> None:
    """The run's audit rows and its success, in the load's transaction."""
    cur = conn.cursor()
    spec: Spec = audit.pop("spec")
    plan: increment.Plan = audit.pop("plan")
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
    cur.executemany(
        "insert into staging.load_run_files (run_id, file_key, ingest_date, sha256, correction) values (%s, %s, %s, %s, %s)",
        [(run_id, f.key, f.ingest_date, f.sha256, f.correction) for f in plan.files],
    )
    cur.executemany(
        "insert into staging.load_run_days (run_id, event_date, events) values (%s, %s, %s)",
        [(run_id, day, n) for day, n in audit.pop("event_days")],
    )
    conn.execute(
        "update staging.load_runs set status = 'succeeded', finished_at = now(), ingest_dates = %(ingest_dates)s, "
        "rows_in = %(rows_in)s, rows_out = %(rows_out)s, rows_quarantined = %(rows_quarantined)s, "
        "spark_seconds = %(spark_seconds)s, load_seconds = %(load_seconds)s, max_ingest_date = %(max_ingest_date)s, "
        "complete_through = %(complete_through)s, forced = %(forced)s, spec_name = %(spec_name)s, "
        "spec_version = %(spec_version)s, rows_filtered = %(rows_filtered)s, mode = %(mode)s, "
        "mode_reason = %(mode_reason)s, rules_version = %(rules_version)s where run_id = %(run_id)s",
        {**audit, "run_id": run_id, "spec_name": spec.name, "spec_version": spec.version, "mode": plan.mode,
         "mode_reason": plan.reason, "rules_version": increment.RULES_VERSION},
    )  # fmt: skip


def _aggregate_aside(cfg, run_id: str, roles) -> tuple[dict[str, int], float]:
    """A full refresh: the aggregates of its events, into their load tables; (rows per table, seconds)."""
    target = {t: sql.Identifier("staging_load", load.load_table_name(t, run_id)) for t in load.TABLES}
    with step("load: aggregate users, products, daily tables (aside)") as s:
        aggregates.build_all(cfg, roles, target["events"], target)
    with pg.connect(cfg) as conn:
        count = sql.SQL("select count(*) from {}")
        rows = {t: conn.execute(count.format(target[t])).fetchone()[0] for t in aggregates.TABLES}
    return rows, s.seconds


def _prepare_swap(settings: Settings, run_id: str, source: str, counts: dict, force: bool) -> float:
    """A full refresh, before its swap: the shrink check, then the load tables indexed and constrained aside; seconds."""
    cfg = settings.postgres
    check_shrink(cfg, source, counts["events"], settings.pipeline.max_shrink, force)
    with step("load: index the new partitions (aside)") as s:
        load.index_load_tables(cfg, load.TABLES, run_id)
        load.constrain_load_tables(cfg, load.TABLES, run_id, source)
    return s.seconds


def _apply_incremental(conn, frames: Frames, run_id: str, source: str, roles, days: list[date]) -> int:
    """Inside the load's transaction: the new events and quarantine rows in, changed derived sessions
    set, the aggregates of the touched ``days`` (and keys) recomputed. Returns the days recomputed."""
    new = sql.Identifier("staging_load", load.load_table_name("events", run_id))
    for table in ("events", "quarantine"):
        columns = sql.SQL(", ").join(map(sql.Identifier, frames.tables[table].columns))
        conn.execute(
            sql.SQL("insert into staging.{} ({}) select {} from {}").format(
                sql.Identifier(table), columns, columns, sql.Identifier("staging_load", load.load_table_name(table, run_id))
            )
        )
    changed = [tuple(r) for r in frames.sessions.collect()]
    if changed:
        pg.temp_table(conn, "changed_sessions", "event_id text, session_id text", changed)
        conn.execute(
            "update staging.events e set session_id = c.session_id from changed_sessions c "
            "where e.source = %s and e.event_id = c.event_id and e.session_id <> c.session_id",
            (source,),
        )
    return len(aggregates.merge(conn, roles, source, new, days))


def _nothing_new(conn, run_id: str, plan: increment.Plan, spec: Spec, audit: dict) -> None:
    zero = dict.fromkeys(("rows_in", "rows_out", "rows_quarantined", "rows_filtered", "spark_seconds", "load_seconds"), 0)
    _record(conn, run_id, {}, {}, {**audit, **zero, "plan": plan, "spec": spec, "filtered": {}, "event_days": []})


def _plan(
    settings: Settings, source: str, force: bool, full_refresh: bool, through: date | None
) -> tuple[Spec, increment.Plan, dict]:
    """The source's spec, what this load reads (and why), and the audit fields known before reading."""
    spec = source_spec(settings.s3, source)  # the spec stored with the RAW files (Pulse's own layout if none)
    committed = list_committed(settings.s3, source)
    plan = increment.plan(settings.postgres, source, committed, spec.version, full_refresh, through)
    if not plan.committed:
        upto = f" through ingest date {through}" if through else ""
        raise LoadCheckError(f"no committed RAW partitions for source={source}{upto} in s3://{settings.s3.raw_bucket}")
    max_ingest = date.fromisoformat(max(f.ingest_date for f in plan.committed))
    complete_through = max_ingest - timedelta(days=settings.pipeline.late_arrival_days)
    say(f"    {'full refresh' if plan.mode == 'full' else 'incremental'}: {plan.reason}")
    audit = {"source": source, "ingest_dates": len({f.ingest_date for f in plan.files}), "max_ingest_date": max_ingest,
             "complete_through": complete_through, "forced": force}  # fmt: skip
    return spec, plan, audit


@dataclass
class Judged:
    frames: Frames
    rows_in: int
    filtered: dict[str, int]
    rules: dict[str, int]
    seconds: float


def _judge(spark, settings: Settings, source: str, run_id: str, plan: increment.Plan, spec: Spec, audit: dict):
    """Spark: the plan's RAW files read, the rules and the dedup applied, counted; the quality gate."""
    raw, compiled = read_raw(spark, settings, plan.files, spec)
    dates, through = audit["ingest_dates"], audit["complete_through"]
    say(f"    reading {len(plan.files)} RAW objects from {dates} ingest dates (complete through {through})")
    if spec.name != "demo":
        say(f"    spec {spec.name} (version {spec.version})")
    with step("spark: parse, validate, dedup") as s, spark_progress(spark, "spark"):
        frames = _frames(spark, settings, raw, compiled, source, run_id, plan.mode == "incremental")
        rows_in, filtered, rules = _tally(frames)
        s.rows = rows_in
    check_quality(frames.classified, rows_in - sum(filtered.values()), rules, settings.pipeline)  # the gate judges kept rows
    return Judged(frames, rows_in, filtered, rules, s.seconds)


def _write(settings: Settings, source: str, run_id: str, plan: increment.Plan, spec: Spec, audit: dict, j: Judged) -> dict:
    """Into Postgres: COPY aside; a full refresh aggregates and indexes aside and swaps, an incremental load
    adds and recomputes what it touched; both in one transaction with the audit. Returns the timings."""
    cfg, incremental = settings.postgres, plan.mode == "incremental"
    load.create_load_tables(cfg, ["events", "quarantine"] if incremental else load.TABLES, run_id)
    counts, table_seconds, copy_seconds = _copy(cfg, j.frames.tables, run_id)
    quarantined = sum(j.rules.values())
    _check_accounting(j.rows_in, counts, quarantined, sum(j.filtered.values()))
    index_seconds, aggregate_seconds, days = 0.0, 0.0, 0
    if not incremental:
        rows, aggregate_seconds = _aggregate_aside(cfg, run_id, spec.roles)
        counts |= rows
        index_seconds = _prepare_swap(settings, run_id, source, counts, audit["forced"])
    event_days = load.event_days(cfg, run_id)
    with step(f"load: {'add to' if incremental else 'swap into'} staging (one transaction)") as s, \
            pg.connect(cfg) as conn, conn.transaction():  # fmt: skip
        if incremental:
            load.set_lock_timeout(conn)
            days = _apply_incremental(conn, j.frames, run_id, source, spec.roles, [day for day, _ in event_days])
        else:
            load.swap_in(conn, load.TABLES, run_id, source)
        _record(conn, run_id, j.rules, counts, {**audit, "rows_in": j.rows_in, "rows_out": counts["events"],
            "rows_quarantined": quarantined, "spark_seconds": j.seconds,
            "load_seconds": copy_seconds + aggregate_seconds + index_seconds + s.seconds, "spec": spec, "filtered": j.filtered,
            "rows_filtered": sum(j.filtered.values()), "plan": plan, "event_days": event_days})  # fmt: skip
    return {"rows_out": counts["events"], "days_recomputed": days, "tables": counts, "table_seconds": table_seconds,
            "copy_seconds": round(copy_seconds, 2), "aggregate_seconds": round(aggregate_seconds, 2),
            "index_seconds": round(index_seconds, 2),
            "swap_seconds": round(s.seconds, 2)}  # fmt: skip


def _run(spark, settings: Settings, source: str, run_id: str, force: bool, full_refresh: bool, through: date | None) -> dict:
    spec, plan, audit = _plan(settings, source, force, full_refresh, through)
    summary = {"run_id": run_id, "source": source, "mode": plan.mode, "mode_reason": plan.reason,
               "complete_through": audit["complete_through"].isoformat(), "spec": f"{spec.name} {spec.version}"}  # fmt: skip
    if not plan.files:
        with pg.connect(settings.postgres) as conn, conn.transaction():
            _nothing_new(conn, run_id, plan, spec, audit)
        return summary | {"rows_in": 0, "rows_out": 0, "quarantined": {}, "filtered": {}, "tables": {}}
    judged = _judge(spark, settings, source, run_id, plan, spec, audit)
    written = _write(settings, source, run_id, plan, spec, audit, judged)
    for frame in judged.frames.cached:
        frame.unpersist()
    return (
        summary
        | written
        | {
            "rows_in": judged.rows_in,
            "quarantined": dict(sorted(judged.rules.items())),
            "filtered": dict(sorted(judged.filtered.items())),
            "spark_seconds": round(judged.seconds, 2),
        }
    )
