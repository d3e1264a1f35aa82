"""Row-for-row snapshots of one source's staging tables and marts: what a run of incremental loads and a full
refresh of the same RAW must agree on (the columns naming the source or the run differ by design)."""

from __future__ import annotations

from pulse.common import pg
from pulse.common.clickhouse import client as ch_client

TABLES = ["events", "quarantine", "users", "products", "daily_event_counts", "daily_active_users", "daily_revenue"]


def staging_rows(stack, source: str, table: str) -> list[tuple]:
    with pg.connect(stack.postgres) as conn:
        columns = [
            c
            for (c,) in conn.execute(
                "select column_name from information_schema.columns where table_schema = 'staging' and table_name = %s "
                "order by ordinal_position",
                (table,),
            )
            if c not in ("source", "run_id")
        ]
        shown = [f"replace(source_file, 'source={source}/', '')" if c == "source_file" else c for c in columns]
        cols = ", ".join(shown)
        return conn.execute(f"select {cols} from staging.{table} where source = %s order by {cols}", (source,)).fetchall()


def staging_snapshot(stack, source: str) -> dict[str, list[tuple]]:
    return {table: staging_rows(stack, source, table) for table in TABLES}


def marts_snapshot(stack, source: str) -> dict[str, list[str]]:
    """Every published mart (not the dq_/ml_ tables, which record runs), and the day-incremental intermediate
    model of the build database, fingerprints and all."""
    ch = ch_client(stack.clickhouse, database=stack.clickhouse.marts_database(source))
    names = [n for (n,) in ch.query("SHOW TABLES").result_rows if not n.startswith(("dq_", "ml_"))]
    marts = {n: sorted(map(repr, ch.query(f"SELECT * FROM `{n}`").result_rows)) for n in names}
    build = ch_client(stack.clickhouse, database=stack.clickhouse.build_database(source))
    marts["build.int_user_daily_activity"] = list(
        map(repr, build.query("SELECT * FROM int_user_daily_activity ORDER BY ALL").result_rows)
    )
    return marts


def assert_same(got: dict, want: dict, what: str) -> None:
    """Equal table for table; every staging table holds rows (a mart may be empty, e.g. the ML ones' joins
    before any ML run, but most must not be: an empty comparison proves nothing)."""
    assert got.keys() == want.keys()
    for name in want:
        assert want[name] or name not in TABLES, f"staging.{name} is empty: nothing compared"
        assert got[name] == want[name], f"{name}: {what} differ from a full refresh"
    filled = [name for name in want if want[name]]
    assert len(filled) >= 0.75 * len(want), f"only {filled} of {list(want)} hold rows"
