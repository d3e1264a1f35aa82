-- Grain: one calendar day. An ordered funnel: a user counts at a step only after the previous steps,
-- in order, on the same day (ClickHouse windowFunnel over the user's events of that day: a view,
-- then a cart at or after it, then a purchase at or after that cart). So carters <= viewers and
-- purchasers <= carters, and every conversion is between 0 and 1.
{{ config(order_by=['funnel_date'], engine='MergeTree()') }}

with levels as (
    select
        event_date,
        user_id,
        windowFunnel(86400)(
            toDateTime(event_time), event_type = 'view', event_type = 'cart', event_type = 'purchase'
        ) as level
    from {{ ref('stg_pulse__events') }}
    group by event_date, user_id
)
select
    l.event_date as funnel_date,
    countIf(l.level >= 1) as viewers,
    countIf(l.level >= 2) as carters,
    countIf(l.level >= 3) as purchasers,
    if(viewers > 0, carters / viewers, NULL) as view_to_cart,
    if(carters > 0, purchasers / carters, NULL) as cart_to_purchase,
    if(viewers > 0, purchasers / viewers, NULL) as view_to_purchase,
    l.event_date <= (select complete_through from {{ ref('int_source_watermark') }}) as is_complete
from levels as l
group by funnel_date
