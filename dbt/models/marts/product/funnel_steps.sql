-- Grain: day x platform x country x acquisition channel x funnel step: users who reached the step that day
-- (the ordered funnel of int_user_daily_funnel over the users of segments_daily, one row per step of the
-- source's own funnel, named as the spec names it, for the funnel chart). A source without a funnel: no rows.
{{ config(order_by=['activity_date', 'platform', 'country', 'acquisition_channel', 'step_order'], engine='MergeTree()') }}

{%- set steps = funnel_steps() %}
{%- set labels = funnel_labels() %}
with reached as (
    select
        a.activity_date as activity_date,
        c.platform as platform,
        c.country as country,
        c.acquisition_channel as acquisition_channel,
        -- users at or past each step: the i-th element counts funnel_level >= i
        [{% for i in range(1, [steps | length, 1] | max + 1) %}countIf(f.funnel_level >= {{ i }}){{ ", " if not loop.last }}{% endfor %}]
            as users_at
    from {{ ref('int_user_daily_activity') }} as a
    inner join {{ ref('int_user_cohorts') }} as c on c.user_id = a.user_id
    left join {{ ref('int_user_daily_funnel') }} as f on f.event_date = a.activity_date and f.user_id = a.user_id
    group by activity_date, platform, country, acquisition_channel
)

select
    activity_date,
    platform,
    country,
    acquisition_channel,
    s.1 as step_order,
    s.2 as step,
    users_at[s.1] as users
from reached
array join [
    {%- for label in (labels or ['']) %}(toUInt8({{ loop.index }}), {{ sql_text(label) }}){{ ", " if not loop.last }}{% endfor -%}
] as s
{%- if steps | length == 0 %}
where false  -- a source without a funnel (invoices, viewing logs)
{%- endif %}
