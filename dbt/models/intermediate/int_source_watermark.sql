-- One row: the completeness watermark of the source, from its last successful cleaning load.
-- Days after `complete_through` may still receive late events: marts flag them incomplete.
{{ config(order_by=['source'], engine='MergeTree()') }}

-- Columns are qualified: in ClickHouse a SELECT alias is visible in WHERE, so an unqualified `source`
-- below would be the literal above and every source's loads would count.
select
    '{{ var("pulse_source") }}' as source,
    toDate(argMax(r.complete_through, r.finished_at)) as complete_through,
    max(r.finished_at) as loaded_at
from {{ source('pulse_staging', 'load_runs') }} as r
where r.source = '{{ var("pulse_source") }}' and r.status = 'succeeded'
