-- Grain: one calendar day. An ordered funnel: a user counts at a step only after the previous steps,
-- in order, on the same day (see int_user_daily_funnel). So carters <= viewers and
-- purchasers <= carters, and every conversion is between 0 and 1.
{{ config(order_by=['funnel_date'], engine='MergeTree()') }}

select
    l.event_date as funnel_date,
    countIf(l.funnel_level >= 1) as viewers,
    countIf(l.funnel_level >= 2) as carters,
    -- the last step (purchased, in the demo's view -> cart -> purchase); a source's own steps: funnel_steps
    countIf(l.funnel_level >= {{ [funnel_steps() | length, 2] | max }}) as purchasers,
    -- the source's own steps, any number: their names and the users at or past each, in order
    -- (typed by name: an empty list of a source without a funnel has no type of its own)
    cast([{% for label in funnel_labels() %}{{ sql_text(label) }}{{ ", " if not loop.last }}{% endfor %}], 'Array(String)')
        as step_names,
    cast(
        [{% for i in range(1, funnel_steps() | length + 1) %}countIf(l.funnel_level >= {{ i }}){{ ", " if not loop.last }}{% endfor %}],
        'Array(UInt64)'
    ) as step_users,
    if(viewers > 0, carters / viewers, NULL) as view_to_cart,
    if(carters > 0, purchasers / carters, NULL) as cart_to_purchase,
    if(viewers > 0, purchasers / viewers, NULL) as view_to_purchase,
    l.event_date <= (select complete_through from {{ ref('int_source_watermark') }}) as is_complete
from {{ ref('int_user_daily_funnel') }} as l
group by funnel_date
