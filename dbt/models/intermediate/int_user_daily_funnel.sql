-- One user on one active day with how far they got through the ordered funnel (the spec's `funnel` role)
-- that day: 0 = not the first step, 1 = the first step, 2 = the second at or after it, and so on
-- (ClickHouse windowFunnel over the user's events of the day). Shared by the funnel marts.
{{ config(order_by=['event_date', 'user_id'], engine='MergeTree()') }}

{%- set steps = funnel_steps() %}
select
    event_date,
    user_id,
    -- windowFunnel is a parametric aggregate: (parameters)(arguments)
    toUInt8(windowFunnel(86400)(  -- noqa: LT01
        toDateTime(event_time),
        {%- for i in range([steps | length, 2] | max) %} {{ funnel_step(i) }}{{ "," if not loop.last }}{% endfor %}
    )) as funnel_level
from {{ ref('stg_pulse__events') }}
{%- if steps | length == 0 %}
where false  -- a source without a funnel (invoices): the funnel marts are empty
{%- endif %}
group by event_date, user_id
