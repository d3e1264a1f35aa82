-- One user on one day they were active. Incremental: each run re-reads the trailing
-- `late_arrival_days` days, so events that arrive late replace their day's row (no duplicates).
{{ config(
    materialized='incremental',
    unique_key=['activity_date', 'user_id'],
    order_by=['activity_date', 'user_id'],
    engine='MergeTree()'
) }}

select
    event_date as activity_date,
    user_id,
    count() as events,
    uniqExact(session_id) as sessions,
    countIf(event_type = 'view') as views,
    countIf(event_type = 'cart') as carts,
    countIf(event_type = 'purchase') as purchases,
    toDecimal64(sumIf(price_usd, event_type = 'purchase'), 2) as revenue_usd
from {{ ref('stg_pulse__events') }}
{% if is_incremental() %}
where event_date >= (select max(activity_date) from {{ this }}) - {{ var('late_arrival_days') }}
{% endif %}
group by activity_date, user_id
