-- Grain: cleaning load x quarantine rule: rows the rule quarantined in that load (staging.load_run_rules).
{{ config(order_by=['started_at', 'run_id', 'rule'], engine='MergeTree()') }}

select
    r.run_id as run_id,
    toDateTime(l.started_at, 'UTC') as started_at,
    l.status as status,
    r.rule as rule,
    r.`rows` as rows_quarantined
from {{ source('pulse_staging', 'load_run_rules') }} as r
inner join {{ source('pulse_staging', 'load_runs') }} as l on l.run_id = r.run_id
where l.source = '{{ var("pulse_source") }}'
