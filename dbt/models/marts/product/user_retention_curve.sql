-- Grain: day N after first activity (0..30). The rolling retention curve over all cohorts that are
-- old enough to have reached day N: retained users on day N / users in those cohorts.
{{ config(order_by=['day_n'], engine='MergeTree()') }}

with -- day N is observable once it is complete (late events for it have had time to land)
last as (select complete_through as last_date from {{ ref('int_source_watermark') }}),
days as (select toInt32(number) as day_n from numbers(31)),
eligible as (
    select d.day_n as day_n, count() as eligible_users
    from days as d
    cross join {{ ref('int_user_cohorts') }} as c
    where addDays(c.cohort_date, d.day_n) <= (select last_date from last)
    group by d.day_n
),
retained as (
    select dateDiff('day', c.cohort_date, a.activity_date) as day_n, uniqExact(a.user_id) as retained_users
    from {{ ref('int_user_daily_activity') }} as a
    inner join {{ ref('int_user_cohorts') }} as c on c.user_id = a.user_id
    where dateDiff('day', c.cohort_date, a.activity_date) <= 30
      and a.activity_date <= (select last_date from last)  -- the same cohorts as `eligible`
    group by day_n
)
select
    e.day_n as day_n,
    e.eligible_users as eligible_users,
    coalesce(r.retained_users, 0) as retained_users,
    retained_users / eligible_users as retention_rate
from eligible as e
left join retained as r on r.day_n = e.day_n
