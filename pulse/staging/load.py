"""Loading Spark results into PostgreSQL: parallel COPY into per-run tables, then one atomic swap.

Each Spark task streams its Arrow batches as CSV into ``COPY … FROM STDIN`` on its own
connection (so loading scales out with the executors), into an unlogged ``staging_load`` table
of this run. Only when every table is loaded does one transaction replace the source's rows in
``staging``; if anything fails before or during it, readers keep seeing the previous good load.
"""

from __future__ import annotations

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


def create_load_tables(cfg: PostgresConfig, tables: list[str], run_id: str) -> None:
    with pg.connect(cfg) as conn:
        for t in tables:
            conn.execute(
                sql.SQL("create unlogged table staging_load.{} (like staging.{} including defaults)").format(
                    sql.Identifier(load_table_name(t, run_id)), sql.Identifier(t)
                )
            )


def drop_load_tables(cfg: PostgresConfig, tables: list[str], run_id: str) -> None:
    with pg.connect(cfg) as conn:
        for t in tables:
            conn.execute(sql.SQL("drop table if exists staging_load.{}").format(sql.Identifier(load_table_name(t, run_id))))


def swap_in(conn, tables: list[str], run_id: str, source: str) -> None:
    """Inside the caller's transaction: replace ``source``'s rows in staging with this run's."""
    conn.execute("set local synchronous_commit = on")
    for t in tables:
        conn.execute(sql.SQL("delete from staging.{} where source = %s").format(sql.Identifier(t)), (source,))
        conn.execute(
            sql.SQL("insert into staging.{} select * from staging_load.{}").format(
                sql.Identifier(t), sql.Identifier(load_table_name(t, run_id))
            )
        )
