-- Grain: one calendar day. Distinct users reaching each funnel step that day, and step conversion.
{{ config(order_by=['funnel_date'], engine='MergeTree()') }}

select
    event_date as funnel_date,
    uniqExactIf(user_id, event_type = 'view') as viewers,
    uniqExactIf(user_id, event_type = 'cart') as carters,
    uniqExactIf(user_id, event_type = 'purchase') as purchasers,
    if(viewers > 0, carters / viewers, NULL) as view_to_cart,
    if(carters > 0, purchasers / carters, NULL) as cart_to_purchase,
    if(viewers > 0, purchasers / viewers, NULL) as view_to_purchase
from {{ ref('stg_pulse__events') }}
group by funnel_date
