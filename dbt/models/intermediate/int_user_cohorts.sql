-- One user with their cohort and segmentation dimensions. The cohort starts on the day of the user's
-- first signup event where the spec names one (roles.signup) and the user has it; else on their first
-- active day.
{{ config(order_by=['user_id'], engine='MergeTree()') }}

{%- set signup = pulse_roles().get('signup') %}
select
    a.user_id as user_id,
    {%- if signup %}
    -- unmatched in a left join, a String key is '' (join_use_nulls = 0): no signup event
    if(s.user_id != '', s.signup_date, a.cohort_date) as cohort_date,
    {%- else %}
    a.cohort_date as cohort_date,
    {%- endif %}
    toStartOfMonth(cohort_date) as cohort_month,
    u.platform as platform,
    u.country as country,
    u.acquisition_channel as acquisition_channel
from (
    select user_id, min(activity_date) as cohort_date
    from {{ ref('int_user_daily_activity') }}
    group by user_id
) as a
{%- if signup %}
left join (
    select user_id, min(event_date) as signup_date
    from {{ ref('stg_pulse__events') }}
    where event_type = {{ sql_text(signup) }}
    group by user_id
) as s on s.user_id = a.user_id
{%- endif %}
left join {{ ref('stg_pulse__users') }} as u on u.user_id = a.user_id
