-- Grain: one signup cohort (users whose first activity is that day). Day-N retention = share of the
-- cohort active exactly N days after their first day. NULL while day N is still in the future.
{{ config(order_by=['cohort_date'], engine='MergeTree()') }}

with activity as (
    select a.user_id as user_id, c.cohort_date as cohort_date,
           dateDiff('day', c.cohort_date, a.activity_date) as day_n
    from {{ ref('int_user_daily_activity') }} as a
    inner join {{ ref('int_user_cohorts') }} as c on c.user_id = a.user_id
),
-- day N is observable once it is complete (late events for it have had time to land)
last as (select complete_through as last_date from {{ ref('int_source_watermark') }})
select
    cohort_date,
    uniqExactIf(user_id, day_n = 0) as cohort_size,
    uniqExactIf(user_id, day_n = 1) as d1_users,
    uniqExactIf(user_id, day_n = 7) as d7_users,
    uniqExactIf(user_id, day_n = 14) as d14_users,
    uniqExactIf(user_id, day_n = 30) as d30_users,
    if(addDays(cohort_date, 1) <= (select last_date from last), d1_users / cohort_size, NULL) as d1_retention,
    if(addDays(cohort_date, 7) <= (select last_date from last), d7_users / cohort_size, NULL) as d7_retention,
    if(addDays(cohort_date, 14) <= (select last_date from last), d14_users / cohort_size, NULL) as d14_retention,
    if(addDays(cohort_date, 30) <= (select last_date from last), d30_users / cohort_size, NULL) as d30_retention
from activity
group by cohort_date
