-- One user of the selected source with the attributes of their first event (segmentation dimensions).
{{ config(order_by=['user_id'], engine='MergeTree()') }}

select
    user_id,
    toDate(first_event_date) as first_active_date,
    toStartOfMonth(toDate(first_event_date)) as cohort_month,
    coalesce(first_platform, 'unknown') as platform,
    coalesce(country, 'unknown') as country,
    coalesce(acquisition_channel, 'unknown') as acquisition_channel
from {{ source('pulse_staging', 'users') }}
where source = '{{ var("pulse_source") }}'
