-- One row: the completeness watermark of the source, from its last successful cleaning load.
-- Days after `complete_through` may still receive late events: marts flag them incomplete.
{{ config(order_by=['source'], engine='MergeTree()') }}

select
    '{{ var("pulse_source") }}' as source,
    toDate(argMax(complete_through, finished_at)) as complete_through,
    max(finished_at) as loaded_at
from {{ source('pulse_staging', 'load_runs') }}
where source = '{{ var("pulse_source") }}' and status = 'succeeded'
