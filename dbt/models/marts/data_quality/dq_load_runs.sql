-- Grain: one cleaning load of this source (from the audit in Postgres staging.load_runs): when, how
-- long (whole seconds: the PostgreSQL engine reads timestamptz to the second), status, rows in / kept /
-- quarantined, and the completeness watermark it set. For the
-- "Data quality" dashboard (the BI role cannot read Postgres; it reads this copy).
{{ config(order_by=['started_at', 'run_id'], engine='MergeTree()') }}

select
    run_id,
    status,
    toDateTime(started_at, 'UTC') as started_at,
    toDateTime(finished_at, 'UTC') as finished_at,
    toFloat64(dateDiff('millisecond', started_at, finished_at)) / 1000 as seconds,
    ingest_dates,
    coalesce(rows_in, 0) as rows_in,
    coalesce(rows_out, 0) as rows_kept,
    coalesce(rows_quarantined, 0) as rows_quarantined,
    if(rows_in > 0, rows_quarantined / rows_in, null) as quarantine_share,
    toDate(complete_through) as complete_through,
    error is not null as has_error
from {{ source('pulse_staging', 'load_runs') }}
where source = '{{ var("pulse_source") }}'
