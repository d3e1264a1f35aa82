-- Grain: signup cohort (first active day) x platform x country x acquisition channel x day N (0..30).
-- cohort_users, users active exactly N days after their first day, and whether day N is observable
-- (complete). Retention over any set of cohorts and segments = sum(retained_users) / sum(cohort_users)
-- over observable rows; over all of them it equals user_retention_curve (and D1/D7 user_retention).
{{ config(order_by=['cohort_date', 'platform', 'country', 'acquisition_channel', 'day_n'], engine='MergeTree()') }}

with sizes as (
    select cohort_date, platform, country, acquisition_channel, count() as cohort_users
    from {{ ref('int_user_cohorts') }}
    group by cohort_date, platform, country, acquisition_channel
),
retained as (
    select
        c.cohort_date as cohort_date, c.platform as platform, c.country as country,
        c.acquisition_channel as acquisition_channel,
        toInt32(dateDiff('day', c.cohort_date, a.activity_date)) as day_n,
        count() as retained_users
    from {{ ref('int_user_daily_activity') }} as a
    inner join {{ ref('int_user_cohorts') }} as c on c.user_id = a.user_id
    where dateDiff('day', c.cohort_date, a.activity_date) <= 30
    group by cohort_date, platform, country, acquisition_channel, day_n
)
select
    s.cohort_date as cohort_date,
    s.platform as platform,
    s.country as country,
    s.acquisition_channel as acquisition_channel,
    toInt32(n.number) as day_n,
    s.cohort_users as cohort_users,
    r.retained_users as retained_users,
    addDays(s.cohort_date, toInt32(n.number)) <= (select complete_through from {{ ref('int_source_watermark') }}) as is_observable
from sizes as s
cross join numbers(31) as n
left join retained as r
    on r.cohort_date = s.cohort_date and r.platform = s.platform and r.country = s.country
    and r.acquisition_channel = s.acquisition_channel and r.day_n = toInt32(n.number)
