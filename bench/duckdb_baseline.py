"""Single-node baseline: the cleaning rules in DuckDB SQL, on the same RAW files (local copies).

Same rules, precedence, dedup and aggregates as the Spark job (pulse.staging.rules/transform),
so the two can be compared by time and by their results.
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb

from pulse.domain import EVENT_TYPES, FX_TO_USD, RAW_COLUMNS, RULES
from pulse.sources import spec as specs


def _sql_list(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


def run(dataset: Path, threads: int = 2) -> dict:
    con = duckdb.connect()
    con.execute(f"set threads = {threads}")
    con.execute("set TimeZone = 'UTC'")
    con.execute("set enable_progress_bar = false")
    files = sorted(str(p) for p in dataset.rglob("*.csv.gz"))
    t0 = time.perf_counter()
    cols = ", ".join(f"'{c}': 'VARCHAR'" for c in RAW_COLUMNS)
    con.execute(f"""
        create table raw as select *, regexp_extract(filename, 'ingest_date=([0-9-]+)', 1) as _ingest_date
        from read_csv({files!r}, header = true, columns = {{{cols}}}, store_rejects = true, filename = true,
                      parallel = true)""")
    malformed = con.execute("select count(distinct (file_id, line)) from reject_errors").fetchone()[0]
    syn = " ".join(f"when '{k}' then '{v}'" for k, v in specs.load("demo").synonyms.items())
    fx = " ".join(f"when '{k}' then {v}" for k, v in FX_TO_USD.items())
    con.execute(f"""
        create view norm as select *,
            nullif(trim(event_time), '') as t_raw,
            coalesce(try_cast(trim(event_time) as timestamptz),
                     case when regexp_full_match(trim(event_time), '[0-9]{{12,13}}')
                          then make_timestamp(trim(event_time)::bigint * 1000)::timestamptz end) as ts,
            case lower(trim(event_type)) {syn} else lower(trim(event_type)) end as etype,
            try_cast(case when regexp_full_match(trim(user_id), '-?[0-9]+') then trim(user_id) end as bigint) as uid,
            try_cast(case when regexp_full_match(trim(product_id), '-?[0-9]+') then trim(product_id) end as bigint) as pid,
            try_cast(case when regexp_full_match(trim(category_id), '-?[0-9]+') then trim(category_id) end as bigint) as cid,
            try_cast(case when regexp_full_match(trim(price), '-?[0-9]+(\\.[0-9]+)?') then trim(price) end
                     as decimal(14,2)) as p,
            coalesce(upper(nullif(trim(currency), '')), 'USD') as cur,
            case coalesce(upper(nullif(trim(currency), '')), 'USD') {fx} end as rate
        from raw""")
    row_rules = {  # the row rules of pulse.staging.rules, in SQL; their order comes from domain.RULES
        "missing_required_field": "t_raw is null or nullif(trim(event_type), '') is null or nullif(trim(user_id), '') is null",
        "wrong_type": "uid is null or (nullif(trim(product_id), '') is not null and pid is null) "
        "or (nullif(trim(category_id), '') is not null and cid is null) "
        "or (nullif(trim(price), '') is not null and p is null)",
        "invalid_timestamp": "ts is null",
        "future_timestamp": "ts >= (_ingest_date::date + 2)::timestamptz",
        "unknown_event_type": f"etype not in ({_sql_list(EVENT_TYPES)})",
        "unknown_currency": "rate is null",
        "invalid_price": "p <= 0 or (etype = 'purchase' and p is null)",
    }
    cases = "\n".join(f"when {row_rules[name]} then '{name}'" for name in RULES if name in row_rules)
    con.execute(f"create view classified as select *, case {cases} end as rule from norm")
    con.execute("""
        create view dedup as select *,
            case when rule is null and row_number() over (partition by rule is null, event_id
                                                          order by _ingest_date, filename) > 1
                 then 'duplicate_event_id' else rule end as rule2
        from classified""")
    con.execute("""
        create view final as select *,
            case when rule2 is null and row_number() over (partition by rule2 is null, uid, user_session, etype, pid, p, ts
                                                           order by _ingest_date, filename) > 1
                 then 'near_duplicate' else rule2 end as final_rule
        from dedup""")
    con.execute(
        "create table events as select *, ts::date as event_date, round(p * rate, 2) as price_usd "
        "from final where final_rule is null"
    )
    con.execute("create table dau as select event_date, count(distinct uid) dau from events group by 1")
    con.execute(
        "create table revenue as select event_date, count(*) purchases, sum(price_usd) revenue from events "
        "where etype = 'purchase' group by 1"
    )
    con.execute("create table users as select uid, min(ts), max(ts), count(*) from events group by 1")
    seconds = time.perf_counter() - t0
    rows_in = con.execute("select count(*) from raw").fetchone()[0] + malformed
    kept = con.execute("select count(*) from events").fetchone()[0]
    revenue = con.execute("select sum(revenue) from revenue").fetchone()[0]
    return {"seconds": seconds, "rows_in": rows_in, "kept": kept, "malformed": malformed, "revenue_usd": str(revenue)}
