-- Grain: one row — the KPI block of the dashboard for the last *complete* day (at or before the
-- source's completeness watermark: later days may still receive late events): DAU/WAU/MAU,
-- stickiness, revenue, ARPU/ARPPU, DAU change against the same weekday a week earlier, and the average D1
-- retention of the cohorts whose day 1 is complete (what `pulse demo` prints as the KPI line).
-- A table, not a view, so it is published with the other marts (write–audit–publish).
{{ config(order_by=['metric_date'], engine='MergeTree()') }}

with days as (
    select m.metric_date as metric_date, m.dau as dau, m.wau as wau, m.mau as mau, m.stickiness as stickiness,
           r.revenue_usd as revenue_usd, r.arpu_usd as arpu_usd, r.arppu_usd as arppu_usd, m.is_complete as is_complete
    from {{ ref('user_daily_metrics') }} as m
    left join {{ ref('revenue_daily') }} as r on r.revenue_date = m.metric_date
),
latest as (select max(metric_date) as d from days where is_complete)
select
    t.metric_date as metric_date, t.dau as dau, t.wau as wau, t.mau as mau, t.stickiness as stickiness,
    t.revenue_usd as revenue_usd, t.arpu_usd as arpu_usd, t.arppu_usd as arppu_usd,
    if(w.dau > 0, t.dau / w.dau - 1, NULL) as dau_change_wow,
    (select avg(d1_retention) from {{ ref('user_retention') }} where d1_retention is not NULL) as avg_d1_retention
from days as t
left join days as w on w.metric_date = addDays(t.metric_date, -7)
where t.metric_date = (select d from latest)
