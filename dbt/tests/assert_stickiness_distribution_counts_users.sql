-- Summed over active days, the stickiness distribution counts each period's distinct active users once.
with dist as (
    select period_type, period_start, sum(users) as users
    from {{ ref('stickiness_distribution') }} group by period_type, period_start
),
actual as (
    select 'week' as period_type, toMonday(activity_date) as period_start, uniqExact(user_id) as users
    from {{ ref('int_user_daily_activity') }} group by period_start
    union all
    select 'month', toStartOfMonth(activity_date), uniqExact(user_id)
    from {{ ref('int_user_daily_activity') }} group by toStartOfMonth(activity_date)
)
select a.period_type, a.period_start
from actual as a
left join dist as d on d.period_type = a.period_type and d.period_start = a.period_start
where d.users != a.users
   or (a.period_type = 'week' and (select max(active_days) from {{ ref('stickiness_distribution') }} where period_type = 'week') > 7)
