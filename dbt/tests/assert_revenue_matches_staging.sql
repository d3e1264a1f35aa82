-- Revenue in the marts equals revenue in the Postgres staging aggregates, day by day and in total.
with marts as (
    select revenue_date as d, revenue_usd from {{ ref('revenue_daily') }}
),
staging as (
    select toDate(event_date) as d, toDecimal64(revenue_usd, 2) as revenue_usd
    from {{ source('pulse_staging', 'daily_revenue') }}
    where source = '{{ var("pulse_source") }}'
)
select coalesce(m.d, s.d) as d, m.revenue_usd as marts_revenue, s.revenue_usd as staging_revenue
from marts as m
full outer join staging as s on s.d = m.d
where coalesce(m.revenue_usd, 0) != coalesce(s.revenue_usd, 0)
