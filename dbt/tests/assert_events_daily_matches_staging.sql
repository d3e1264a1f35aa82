-- Events and users per day and type in the marts equal Spark's daily_event_counts in staging.
with marts as (
    select event_date as d, event_type, events, users from {{ ref('events_daily') }}
),
staging as (
    select toDate(event_date) as d, event_type, toUInt64(events) as events, toUInt64(users) as users
    from {{ source('pulse_staging', 'daily_event_counts') }}
    where source = '{{ var("pulse_source") }}'
)
select coalesce(m.d, s.d) as d, coalesce(m.event_type, s.event_type) as event_type,
       m.events as marts_events, s.events as staging_events, m.users as marts_users, s.users as staging_users
from marts as m
full outer join staging as s on s.d = m.d and s.event_type = m.event_type
where coalesce(m.events, 0) != coalesce(s.events, 0) or coalesce(m.users, 0) != coalesce(s.users, 0)
