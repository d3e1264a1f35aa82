"""Incremental loads: which RAW files are new, whether a load may take only them, and what of the
earlier loads their dedup and sessions must see.

A load takes only the files no load since the source's last full refresh took (by manifest: key and
checksum). That gives exactly what a full refresh of all files would give as long as the new files
sort after every loaded one (the first arrival of an event stays first) and none corrects earlier
events; a correction, a partition dated before loaded ones, a changed or removed RAW file, a changed
spec or changed cleaning rules make the load a full refresh, and the load says why.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from psycopg import sql
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pulse.common import pg
from pulse.config import PostgresConfig
from pulse.lake.raw import RawFile
from pulse.staging.rules import ARRIVAL_ORDER, NATURAL_KEY, PRIOR_FILE
from pulse.staging.transform import DERIVED

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Bump when a change to the rules, the dedup, the sessions or the aggregates changes what a load of
# the same RAW gives: the next load of every source is then a full refresh (and says so).
RULES_VERSION = "2026-12-01"


@dataclass(frozen=True)
class Plan:
    mode: str  # full | incremental
    reason: str
    files: list[RawFile]  # the files this load reads
    committed: list[RawFile] = field(default_factory=list)  # every committed file of the source


def _last_full(conn, source: str):
    return conn.execute(
        "select run_id, finished_at, spec_version, rules_version from staging.load_runs where source = %s "
        "and status = 'succeeded' and mode = 'full' order by finished_at desc limit 1",
        (source,),
    ).fetchone()


def loaded_files(conn, source: str, since) -> dict[str, str]:
    """key -> sha256 of the files the source's successful loads since its last full refresh took."""
    rows = conn.execute(
        "select f.file_key, f.sha256 from staging.load_run_files f join staging.load_runs r using (run_id) "
        "where r.source = %s and r.status = 'succeeded' and r.finished_at >= %s",
        (source, since),
    ).fetchall()
    return dict(rows)


def plan(
    cfg: PostgresConfig,
    source: str,
    committed: list[RawFile],
    spec_version: str,
    full_refresh: bool,
    through: date | None = None,
) -> Plan:
    """Full refresh or incremental, with the reason, and the files to read (from the source's load audit)."""
    if full_refresh:
        return decide(None, {}, committed, spec_version, full_refresh=True, through=through)
    with pg.connect(cfg) as conn:
        last = _last_full(conn, source)
        loaded = loaded_files(conn, source, last[1]) if last else {}
    return decide(last and (last[2], last[3]), loaded, committed, spec_version, through=through)


def decide(
    last_full: tuple[str, str | None] | None,
    loaded: dict[str, str],
    committed: list[RawFile],
    spec_version: str,
    full_refresh: bool = False,
    through: date | None = None,
) -> Plan:
    """The plan, given the last full refresh's (spec version, rules version), the files loaded since
    (key -> sha256) and the committed files. ``through`` (a daily run's day): files of later ingest dates
    are left for a later load, as if not yet arrived; files already loaded stay (a re-run of an old day
    never rolls staging back)."""
    if through is not None:
        committed = [f for f in committed if f.ingest_date <= through.isoformat() or f.key in loaded]

    def full(reason: str) -> Plan:
        return Plan("full", reason, committed, committed)

    if full_refresh:
        return full("asked for (--full-refresh)")
    if last_full is None:
        return full("the source's first load")
    last_spec, last_rules = last_full
    if last_rules is None:
        return full("the last full refresh was made by a release before incremental loads")
    if last_rules != RULES_VERSION:
        return full(f"the cleaning rules changed since the last full refresh ({last_rules} -> {RULES_VERSION})")
    if last_spec != spec_version:
        return full(f"the source's spec changed since the last full refresh ({last_spec} -> {spec_version})")
    now = {f.key: f for f in committed}
    changed = sorted(k for k, sha in loaded.items() if k not in now or now[k].sha256 != sha)
    if changed:
        return full(f"RAW changed under an earlier load: {changed[0]} was removed or rewritten")
    new = [f for f in committed if f.key not in loaded]
    corrections = sorted({f.ingest_date for f in new if f.correction})
    if corrections:
        return full(f"a correction partition (ingest_date={corrections[0]}) replaces earlier events")
    newest = max(loaded, default="")
    early = sorted(f.key for f in new if f.key < newest)
    if early:
        return full(f"{early[0]} sorts before files already loaded (the first arrival of an event would change)")
    return Plan("incremental", f"{len(new)} new RAW files" if new else "nothing new in RAW", new, committed)


def _rows(conn, query: sql.Composable, temp: str, columns: str, values: Iterable[tuple]) -> list[tuple]:
    """``query``'s rows, with ``values`` COPYed into a temporary table ``temp`` (``columns``) it joins."""
    with conn.transaction():
        pg.temp_table(conn, temp, columns, values)
        return conn.execute(query).fetchall()


PRIOR_SCHEMA = (
    "_file string, _row long, _correction boolean, n_event_id string, n_user_id string, n_user_session string, "
    "n_event_type string, n_product_id string, n_price decimal(14,2), n_event_ts timestamp"
)


@dataclass(frozen=True)
class NewKeys:
    """What of the new rows the earlier loads' events are looked up by (collected in one Spark job)."""

    ids: set[tuple[str]]  # event ids
    pairs: set[tuple[str, datetime]]  # (user, instant), the instant aware in UTC
    session_days: set[tuple[str, date]]  # (user, UTC day) of rows without a client session id


def new_keys(judged: DataFrame) -> NewKeys:
    """The keys of the rows that passed the row rules, dedup losers included: their user-days are a superset
    of the kept rows', and deriving an earlier day's sessions again from the same events changes nothing.
    The instant travels as microseconds since the epoch: a collected timestamp is a naive datetime in the
    host's zone, which Postgres (in UTC) would read as another instant on any host not in UTC."""
    ok = judged.filter(F.col("rule").isNull())
    rows = ok.select("n_event_id", "n_user_id", F.unix_micros("n_event_ts"), F.to_date("n_event_ts"),
                     F.col("n_user_session").isNull()).collect()  # fmt: skip
    return NewKeys(
        ids={(r[0],) for r in rows},
        pairs={(r[1], EPOCH + timedelta(microseconds=r[2])) for r in rows},
        session_days={(r[1], r[3]) for r in rows if r[4]},
    )


def dedup_priors(spark, cfg: PostgresConfig, source: str, keys: NewKeys) -> DataFrame:
    """The rows earlier loads decided that share an event id or a (user, instant) with the new rows: the
    events (with their natural key), and the ids of near duplicates (an id they won)."""
    s = sql.Literal(source)
    natural = sql.SQL(
        "e.event_id, e.user_id, case when e.session_id like {} then null else e.session_id end, e.event_type, "
        "e.product_id, e.price, e.event_time"
    ).format(sql.Literal(DERIVED + "-%"))
    with pg.connect(cfg) as conn:
        by_id = _rows(
            conn,
            sql.SQL(
                "select {n} from staging.events e join prior_ids using (event_id) where e.source = {s} union all "
                "select q.event_id, null, null, null, null, null, null from staging.quarantine q join prior_ids using (event_id) "
                "where q.source = {s} and q.rule = 'near_duplicate'"
            ).format(n=natural, s=s),
            "prior_ids",
            "event_id text",
            keys.ids,
        )
        by_key = _rows(
            conn,
            sql.SQL(
                "select {n} from staging.events e join prior_keys p on e.user_id = p.user_id and e.event_time = p.event_time "
                "where e.source = {s}"
            ).format(n=natural, s=s),
            "prior_keys",
            "user_id text, event_time timestamptz",
            keys.pairs,
        )
    rows = [(PRIOR_FILE, 0, False, *r) for r in {*by_id, *by_key}]
    return spark.createDataFrame(rows, PRIOR_SCHEMA).select(*ARRIVAL_ORDER, "_correction", "n_event_id", *NATURAL_KEY)


def session_priors(spark, cfg: PostgresConfig, source: str, keys: NewKeys) -> DataFrame:
    """The events earlier loads kept with a derived session on the user-days where new rows need one:
    their sessions are derived again, together with the new events (``_prior`` flags them)."""
    query = sql.SQL(
        "select e.event_id, e.user_id, e.event_time from staging.events e join prior_days d on e.user_id = d.user_id "
        "and e.event_time >= d.day::timestamp at time zone 'UTC' and e.event_time < (d.day + 1)::timestamp at time zone 'UTC' "
        "where e.source = {} and e.session_id like {}"
    ).format(sql.Literal(source), sql.Literal(DERIVED + "-%"))
    with pg.connect(cfg) as conn:
        rows = _rows(conn, query, "prior_days", "user_id text, day date", keys.session_days) if keys.session_days else []
    return spark.createDataFrame(rows, "n_event_id string, n_user_id string, n_event_ts timestamp").withColumn(
        "_prior", F.lit(True)
    )
