-- One user with their cohort and segmentation dimensions. The cohort starts on the day of the user's
-- first signup event where the spec names one (roles.signup) and the user has it; else on their first
-- active day.
{{ config(order_by=['user_id'], engine='MergeTree()') }}

{%- set signup = pulse_roles().get('signup') %}
select
    a.user_id as user_id,
    -- unmatched in a left join, a String key is '' (join_use_nulls = 0): no signup event
    if(s.user_id != '', s.signup_date, a.first_active_date) as cohort_date,
    toStartOfMonth(cohort_date) as cohort_month,
    u.platform as platform,
    u.country as country,
    u.acquisition_channel as acquisition_channel
from (
    select user_id, min(activity_date) as first_active_date
    from {{ ref('int_user_daily_activity') }}
    group by user_id
) as a
left join (
    select user_id, min(event_date) as signup_date
    from {{ ref('stg_pulse__events') }}
    where {% if signup %}event_type = {{ sql_text(signup) }}{% else %}false{% endif %}
    group by user_id
) as s on a.user_id = s.user_id
left join {{ ref('stg_pulse__users') }} as u on a.user_id = u.user_id
