-- Grain: cohort month x months since first activity x platform x country x acquisition channel,
-- dense (a month without activity is a row with 0 active users, so cumulative revenue carries on).
-- Retained % over any segments = sum(active_users) / sum(cohort_size); LTV per user =
-- sum(cumulative_revenue_usd) / sum(cohort_size). Over all segments it equals cohorts_monthly.
{{ config(order_by=['cohort_month', 'months_since_first', 'platform', 'country', 'acquisition_channel'], engine='MergeTree()') }}

with sizes as (
    select cohort_month, platform, country, acquisition_channel, count() as cohort_size
    from {{ ref('int_user_cohorts') }}
    group by cohort_month, platform, country, acquisition_channel
),
monthly as (
    select
        c.cohort_month as cohort_month, c.platform as platform, c.country as country,
        c.acquisition_channel as acquisition_channel,
        toInt32(dateDiff('month', c.cohort_month, toStartOfMonth(a.activity_date))) as months_since_first,
        uniqExact(a.user_id) as active_users,
        sum(a.revenue_usd) as revenue_usd
    from {{ ref('int_user_daily_activity') }} as a
    inner join {{ ref('int_user_cohorts') }} as c on c.user_id = a.user_id
    group by cohort_month, platform, country, acquisition_channel, months_since_first
),
last_month as (select toStartOfMonth(max(activity_date)) as m from {{ ref('int_user_daily_activity') }}),
grid as (
    select s.cohort_month as cohort_month, s.platform as platform, s.country as country,
           s.acquisition_channel as acquisition_channel, s.cohort_size as cohort_size,
           toInt32(arrayJoin(range(toUInt32(dateDiff('month', s.cohort_month, (select m from last_month)) + 1)))) as months_since_first
    from sizes as s
)
select
    g.cohort_month as cohort_month,
    g.months_since_first as months_since_first,
    g.platform as platform,
    g.country as country,
    g.acquisition_channel as acquisition_channel,
    g.cohort_size as cohort_size,
    m.active_users as active_users,
    toDecimal64(m.revenue_usd, 2) as revenue_usd,
    toDecimal64(sum(m.revenue_usd) over (
        partition by g.cohort_month, g.platform, g.country, g.acquisition_channel order by g.months_since_first
        rows between unbounded preceding and current row), 2) as cumulative_revenue_usd,
    toLastDayOfMonth(addMonths(g.cohort_month, g.months_since_first))
        <= (select complete_through from {{ ref('int_source_watermark') }}) as is_complete
from grid as g
left join monthly as m
    on m.cohort_month = g.cohort_month and m.months_since_first = g.months_since_first
    and m.platform = g.platform and m.country = g.country and m.acquisition_channel = g.acquisition_channel
