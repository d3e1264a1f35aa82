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

from psycopg import sql
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pulse.common import pg
from pulse.config import PostgresConfig


def load_table_name(table: str, run_id: str) -> str:
    return f"{table}_{run_id.replace('-', '_')}"


def copy_dataframe(df: DataFrame, conninfo: str, schema: str, table: str) -> int:
    """COPY every partition of ``df`` into schema.table (columns by name); returns rows copied."""
    columns = df.columns
    statement = sql.SQL("copy {}.{} ({}) from stdin (format csv)").format(
        sql.Identifier(schema), sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )

    def copy_partition(batches: Iterator) -> Iterator:
        import io

        import psycopg
        import pyarrow as pa
        import pyarrow.csv as pacsv

        rows = 0
        options = pacsv.WriteOptions(include_header=False, quoting_style="all_valid")  # unquoted empty = NULL
        with psycopg.connect(conninfo) as conn, conn.cursor() as cur, cur.copy(statement) as copy:
            for batch in batches:
                if batch.num_rows:
                    buf = io.BytesIO()
                    pacsv.write_csv(batch, buf, options)
                    copy.write(buf.getvalue())
                    rows += batch.num_rows
        yield pa.RecordBatch.from_pydict({"rows": [rows]})

    total = df.mapInArrow(copy_partition, "rows long").agg(F.sum("rows")).collect()[0][0]
    return int(total or 0)


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
                "select c.relname, i.indisunique, pg_get_indexdef(i.indexrelid, k + 1, true) "
                "from pg_index i join pg_class c on c.oid = i.indexrelid "
                "cross join generate_series(0, i.indnkeyatts - 1) k "
                "where i.indrelid = %s::regclass order by c.relname, k",
                (f"staging.{t}",),
            ).fetchall()
            by_index: dict[tuple[str, bool], list[str]] = {}
            for name, unique, column in indexes:
                by_index.setdefault((name, unique), []).append(column)
            for (parent_index, unique), columns in by_index.items():
                # explicit, run-unique names: the index moves to schema staging with its table at the swap
                name = f"{parent_index[:40]}_{hashlib.sha1(run_id.encode()).hexdigest()[:12]}"
                conn.execute(
                    sql.SQL("create {} index {} on {} ({})").format(
                        sql.SQL("unique" if unique else ""),
                        sql.Identifier(name),
                        target,
                        sql.SQL(", ").join(map(sql.Identifier, columns)),
                    )
                )


def drop_load_tables(cfg: PostgresConfig, tables: list[str], run_id: str) -> None:
    with pg.connect(cfg) as conn:
        for t in tables:
            conn.execute(sql.SQL("drop table if exists staging_load.{}").format(sql.Identifier(load_table_name(t, run_id))))


def swap_in(conn, tables: list[str], run_id: str, source: str) -> None:
    """Inside the caller's transaction: make this run's tables the source's partitions of staging."""
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
