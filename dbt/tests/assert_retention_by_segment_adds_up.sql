-- The segment-grain retention and cohort marts, summed over segments, equal the global marts.
with curve as (
    select day_n, sumIf(cohort_users, is_observable) as eligible, sumIf(retained_users, is_observable) as retained
    from {{ ref('retention_curve_by_segment') }} group by day_n
),
cohorts as (
    select cohort_month, months_since_first, sum(active_users) as active_users,
           sum(cumulative_revenue_usd) as cumulative_revenue_usd
    from {{ ref('cohorts_monthly_by_segment') }} group by cohort_month, months_since_first
)
select 'user_retention_curve' as mart, toString(u.day_n) as cell
from {{ ref('user_retention_curve') }} as u
left join curve as c on c.day_n = u.day_n
where c.eligible != u.eligible_users or c.retained != u.retained_users
union all
select 'cohorts_monthly', concat(toString(m.cohort_month), '+', toString(m.months_since_first))
from {{ ref('cohorts_monthly') }} as m
left join cohorts as c on c.cohort_month = m.cohort_month and c.months_since_first = m.months_since_first
where c.active_users != m.active_users or c.cumulative_revenue_usd != m.cumulative_revenue_usd
