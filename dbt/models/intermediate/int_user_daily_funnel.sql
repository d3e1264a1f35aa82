-- One user on one active day with how far they got through the ordered funnel that day:
-- 0 = no view, 1 = viewed, 2 = carted at or after a view, 3 = purchased at or after that cart
-- (ClickHouse windowFunnel over the user's events of the day). Shared by the funnel marts.
{{ config(order_by=['event_date', 'user_id'], engine='MergeTree()') }}

select
    event_date,
    user_id,
    -- windowFunnel is a parametric aggregate: (parameters)(arguments)
    toUInt8(windowFunnel(86400)(  -- noqa: LT01
        toDateTime(event_time), event_type = 'view', event_type = 'cart', event_type = 'purchase'
    )) as funnel_level
from {{ ref('stg_pulse__events') }}
group by event_date, user_id
