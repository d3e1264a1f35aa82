-- Grain: one cleaning load of this source (from the audit in Postgres staging.load_runs): when, how
-- long, status, rows in / kept / quarantined, and the completeness watermark it set. For the
-- "Data quality" dashboard (the BI role cannot read Postgres; it reads this copy).
-- Columns are qualified: in ClickHouse a SELECT alias is visible in the other expressions, so an
-- unqualified `started_at` in the duration would be the whole-second alias, not the column.
{{ config(order_by=['started_at', 'run_id'], engine='MergeTree()') }}

select
    r.run_id as run_id,
    r.status as status,
    toDateTime(r.started_at, 'UTC') as started_at,
    toDateTime(r.finished_at, 'UTC') as finished_at,
    toFloat64(dateDiff('millisecond', r.started_at, r.finished_at)) / 1000 as seconds,
    r.ingest_dates as ingest_dates,
    coalesce(r.rows_in, 0) as rows_in,
    coalesce(r.rows_out, 0) as rows_kept,
    coalesce(r.rows_quarantined, 0) as rows_quarantined,
    if(r.rows_in > 0, r.rows_quarantined / r.rows_in, null) as quarantine_share,
    toDate(r.complete_through) as complete_through,
    r.error is not null as has_error
from {{ source('pulse_staging', 'load_runs') }} as r
where r.source = '{{ var("pulse_source") }}'
