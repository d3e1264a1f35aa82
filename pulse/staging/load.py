"""Loading Spark results into PostgreSQL: parallel COPY into per-run tables, then one atomic swap.

Each Spark task streams its Arrow batches as CSV into ``COPY … FROM STDIN`` on its own
connection (so loading scales out with the executors), into a ``staging_load`` table of this
run. The staging tables are partitioned by source; once every load table is filled and indexed
(still aside, readers undisturbed), one short transaction detaches the source's old partitions
and attaches the new ones. If anything fails before or during it, readers keep the previous load.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import psycopg
from psycopg import sql
from pyspark.sql import DataFrame

from pulse.common import pg
from pulse.config import PostgresConfig

TABLES = ["events", "quarantine", "users", "products", "daily_event_counts", "daily_active_users", "daily_revenue"]
BOUND_CHECK = "pulse_partition_bound"


def load_table_name(table: str, run_id: str) -> str:
    return f"{table}_{run_id.replace('-', '_')}"


def copy_dataframe(df: DataFrame, conninfo: str, schema: str, table: str, run_id: str) -> int:
    """COPY every partition of ``df`` into schema.table (columns by name); returns rows copied.

    Safe under task retry and speculation: each Spark partition is COPYed in one transaction that
    also records it in ``staging.load_run_tasks`` under a lock on (run, table, partition). An attempt
    that fails rolls back whole; an attempt that finds its partition recorded loads nothing. The row
    count is read from that ledger, so it counts each partition once."""
    columns = df.columns
    statement = sql.SQL("copy {}.{} ({}) from stdin (format csv)").format(
        sql.Identifier(schema), sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )

    def copy_partition(batches: Iterator) -> Iterator:
        import io

        import psycopg
        import pyarrow as pa
        import pyarrow.csv as pacsv
        from pyspark import TaskContext

        part = TaskContext.get().partitionId()
        options = pacsv.WriteOptions(include_header=False, quoting_style="all_valid")  # unquoted empty = NULL
        with psycopg.connect(conninfo) as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute("select pg_advisory_xact_lock(hashtext(%s), %s)", (f"{run_id}/{table}", part))
            cur.execute(
                "select 1 from staging.load_run_tasks where run_id = %s and table_name = %s and partition_id = %s",
                (run_id, table, part),
            )
            if cur.fetchone() is None:  # not loaded by an earlier attempt of this task
                rows = 0
                with cur.copy(statement) as copy:
                    for batch in batches:
                        if batch.num_rows:
                            buf = io.BytesIO()
                            pacsv.write_csv(batch, buf, options)
                            copy.write(buf.getvalue())
                            rows += batch.num_rows
                cur.execute(
                    "insert into staging.load_run_tasks (run_id, table_name, partition_id, rows) values (%s, %s, %s, %s)",
                    (run_id, table, part, rows),
                )
        yield pa.RecordBatch.from_pydict({"partition": pa.array([part], pa.int32())})

    df.mapInArrow(copy_partition, "partition int").collect()
    with psycopg.connect(conninfo) as conn:
        total = conn.execute(
            "select coalesce(sum(rows), 0) from staging.load_run_tasks where run_id = %s and table_name = %s", (run_id, table)
        ).fetchone()[0]
    return int(total)


def partition_name(table: str, source: str) -> str:
    return f"{table}__{source}"


def create_load_tables(cfg: PostgresConfig, tables: list[str], run_id: str) -> None:
    with pg.connect(cfg) as conn:
        for t in tables:
            # no indexes yet: they are built once after COPY, faster than maintained row by row
            conn.execute(
                sql.SQL("create table staging_load.{} (like staging.{} including defaults including constraints)").format(
                    sql.Identifier(load_table_name(t, run_id)), sql.Identifier(t)
                )
            )


def index_load_tables(cfg: PostgresConfig, tables: list[str], run_id: str) -> None:
    """Give each load table the indexes of its parent, so ATTACH adopts them instead of building them
    inside the swap transaction."""
    with pg.connect(cfg, autocommit=True) as conn:
        for t in tables:
            target = sql.Identifier("staging_load", load_table_name(t, run_id))
            conn.execute(sql.SQL("analyze {}").format(target))
            indexes = conn.execute(
                "select c.relname, i.indisunique, con.contype, pg_get_indexdef(i.indexrelid, k + 1, true) "
                "from pg_index i join pg_class c on c.oid = i.indexrelid "
                "left join pg_constraint con on con.conindid = i.indexrelid and con.conrelid = i.indrelid "
                "cross join generate_series(0, i.indnkeyatts - 1) k "
                "where i.indrelid = %s::regclass order by c.relname, k",
                (f"staging.{t}",),
            ).fetchall()
            by_index: dict[tuple[str, bool, str | None], list[str]] = {}
            for name, unique, contype, column in indexes:
                by_index.setdefault((name, unique, contype), []).append(column)
            for (parent_index, unique, contype), columns in by_index.items():
                # explicit, run-unique names: the index moves to schema staging with its table at the swap
                name = sql.Identifier(f"{parent_index[:40]}_{hashlib.sha1(run_id.encode()).hexdigest()[:12]}")
                cols = sql.SQL(", ").join(map(sql.Identifier, columns))
                if contype in ("p", "u"):
                    # the parent's key is a constraint: only a constraint is adopted by ATTACH (a bare
                    # unique index is not, and ATTACH would build another one inside the swap)
                    kind = sql.SQL("primary key" if contype == "p" else "unique")
                    conn.execute(sql.SQL("alter table {} add constraint {} {} ({})").format(target, name, kind, cols))
                else:
                    unique_sql = sql.SQL("unique" if unique else "")
                    conn.execute(sql.SQL("create {} index {} on {} ({})").format(unique_sql, name, target, cols))


def event_days(cfg: PostgresConfig, run_id: str) -> list[tuple]:
    """(event date, events) of a run's events load table."""
    with pg.connect(cfg) as conn:
        target = sql.Identifier("staging_load", load_table_name("events", run_id))
        return conn.execute(sql.SQL("select event_date, count(*) from {} group by 1 order by 1").format(target)).fetchall()


def drop_load_tables(cfg: PostgresConfig, tables: list[str], run_id: str) -> None:
    """Remove a run's load tables and task ledger (after its swap, failure or death)."""
    with pg.connect(cfg) as conn:
        for t in tables:
            conn.execute(sql.SQL("drop table if exists staging_load.{}").format(sql.Identifier(load_table_name(t, run_id))))
        conn.execute("delete from staging.load_run_tasks where run_id = %s", (run_id,))


def constrain_load_tables(cfg: PostgresConfig, tables: list[str], run_id: str, source: str) -> None:
    """A CHECK matching the partition bound, added aside: ATTACH then trusts it instead of scanning
    the whole table under its exclusive lock."""
    with pg.connect(cfg, autocommit=True) as conn:
        for t in tables:
            conn.execute(
                sql.SQL("alter table staging_load.{} add constraint {} check (source = {})").format(
                    sql.Identifier(load_table_name(t, run_id)), sql.Identifier(BOUND_CHECK), sql.Literal(source)
                )
            )


def set_lock_timeout(conn, seconds: float = 10) -> None:
    """Inside the caller's transaction: wait at most ``seconds`` for each lock (a long reader would otherwise
    stall every query queued behind a writer's exclusive lock); on timeout the transaction fails."""
    conn.execute(sql.SQL("set local lock_timeout = {}").format(sql.Literal(f"{int(seconds * 1000)}ms")))


def swap_in(conn, tables: list[str], run_id: str, source: str, lock_timeout_s: float = 10) -> None:
    """Inside the caller's transaction: make this run's tables the source's partitions of staging.
    Waits at most ``lock_timeout_s`` for each lock (a long reader would otherwise stall every query
    queued behind the swap's exclusive lock); on timeout the transaction fails and readers keep the
    previous load."""
    set_lock_timeout(conn, lock_timeout_s)
    for t in tables:
        part = partition_name(t, source)
        exists = conn.execute("select to_regclass(%s) is not null", (f"staging.{part}",)).fetchone()[0]
        if exists:
            conn.execute(
                sql.SQL("alter table staging.{} detach partition staging.{}").format(sql.Identifier(t), sql.Identifier(part))
            )
            conn.execute(sql.SQL("drop table staging.{}").format(sql.Identifier(part)))
        new = load_table_name(t, run_id)
        conn.execute(sql.SQL("alter table staging_load.{} rename to {}").format(sql.Identifier(new), sql.Identifier(part)))
        conn.execute(sql.SQL("alter table staging_load.{} set schema staging").format(sql.Identifier(part)))
        conn.execute(
            sql.SQL("alter table staging.{} attach partition staging.{} for values in ({})").format(
                sql.Identifier(t), sql.Identifier(part), sql.Literal(source)
            )
        )
        conn.execute(
            sql.SQL("alter table staging.{} drop constraint {}").format(sql.Identifier(part), sql.Identifier(BOUND_CHECK))
        )
