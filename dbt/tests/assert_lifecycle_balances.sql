-- Lifecycle identities: new + returning + resurrecting = the week's active users, and
-- returning + dormant = the previous week's active users.
with lifecycle as (
    select week_start, sum(new_users + returning_users + resurrecting_users) as active,
           sum(returning_users + dormant_users) as previous_active
    from {{ ref('lifecycle_weekly') }} group by week_start
),
weekly as (
    select toMonday(activity_date) as week_start, uniqExact(user_id) as active
    from {{ ref('int_user_daily_activity') }} group by week_start
)
select l.week_start
from lifecycle as l
left join weekly as w on w.week_start = l.week_start
left join weekly as p on p.week_start = addWeeks(l.week_start, -1)
where l.active != w.active or l.previous_active != p.active
