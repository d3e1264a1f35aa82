-- Paying users are a subset of active users, so revenue per payer is never below revenue per user.
select 'daily' as grain, toString(revenue_date) as period, arpu_usd, arppu_usd
from {{ ref('revenue_daily') }} where arppu_usd < arpu_usd
union all
select 'monthly' as grain, toString(revenue_month) as period, arpu_usd, arppu_usd
from {{ ref('arpu_monthly') }} where arppu_usd < arpu_usd
