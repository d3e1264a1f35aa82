-- Every user is in exactly one segment, so the segment-grain marts must add up to the global ones.
with dau as (
    select metric_date, sum(dau) as dau, sum(wau) as wau, sum(mau) as mau
    from {{ ref('user_daily_metrics_by_segment') }} group by metric_date
),
seg as (
    select activity_date, sum(active_users) as active_users, sum(revenue_usd) as revenue_usd,
           sum(funnel_viewers) as viewers, sum(funnel_carters) as carters, sum(funnel_purchasers) as purchasers
    from {{ ref('segments_daily') }} group by activity_date
)
select 'user_daily_metrics' as mart, m.metric_date as day
from {{ ref('user_daily_metrics') }} as m
left join dau as d on d.metric_date = m.metric_date
where d.dau != m.dau or d.wau != m.wau or d.mau != m.mau
union all
select 'revenue_daily', r.revenue_date
from {{ ref('revenue_daily') }} as r
left join seg as s on s.activity_date = r.revenue_date
where s.active_users != r.dau or s.revenue_usd != r.revenue_usd
union all
select 'funnel_daily', f.funnel_date
from {{ ref('funnel_daily') }} as f
left join seg as s on s.activity_date = f.funnel_date
where s.viewers != f.viewers or s.carters != f.carters or s.purchasers != f.purchasers
