-- One clean event of the selected source, typed for ClickHouse.
{{ config(order_by=['event_date', 'user_id'], engine='MergeTree()') }}

select
    event_id,
    toDateTime64(event_time, 3, 'UTC') as event_time,
    toDate(event_date) as event_date,
    event_type,
    user_id,
    session_id,
    product_id,
    category_code,
    brand,
    toDecimal64(coalesce(price_usd, 0), 2) as price_usd,
    coalesce(platform, 'unknown') as platform,
    coalesce(country, 'unknown') as country,
    coalesce(channel, 'unknown') as channel,
    is_late = 1 as is_late,
    properties
from {{ source('pulse_staging', 'events') }}
where source = '{{ var("pulse_source") }}'
