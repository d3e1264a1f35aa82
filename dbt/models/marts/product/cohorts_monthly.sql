-- Grain: monthly cohort (month of first activity) x months since first activity.
-- retained_pct = active users / cohort size; LTV per user = cumulative revenue / cohort size.
-- `is_complete`: the calendar month of that cell is at or before the completeness watermark.
{{ config(order_by=['cohort_month', 'months_since_first'], engine='MergeTree()') }}

with monthly as (
    select
        c.cohort_month as cohort_month,
        toInt32(dateDiff('month', c.cohort_month, toStartOfMonth(a.activity_date))) as months_since_first,
        uniqExact(a.user_id) as active_users,
        sum(a.revenue_usd) as revenue_usd
    from {{ ref('int_user_daily_activity') }} as a
    inner join {{ ref('int_user_cohorts') }} as c on c.user_id = a.user_id
    group by cohort_month, months_since_first
),
sizes as (
    select cohort_month, count() as cohort_size from {{ ref('int_user_cohorts') }} group by cohort_month
)
select
    m.cohort_month as cohort_month,
    m.months_since_first as months_since_first,
    s.cohort_size as cohort_size,
    m.active_users as active_users,
    m.active_users / s.cohort_size as retained_pct,
    toDecimal64(m.revenue_usd, 2) as revenue_usd,
    toDecimal64(sum(m.revenue_usd) over (partition by m.cohort_month order by m.months_since_first
                                         rows between unbounded preceding and current row), 2) as cumulative_revenue_usd,
    toFloat64(cumulative_revenue_usd) / s.cohort_size as ltv_per_user_usd,
    toLastDayOfMonth(addMonths(m.cohort_month, m.months_since_first))
        <= (select complete_through from {{ ref('int_source_watermark') }}) as is_complete
from monthly as m
inner join sizes as s on s.cohort_month = m.cohort_month
