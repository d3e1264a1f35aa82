-- Paying users are a subset of active users, so revenue per payer is never below revenue per user
-- (while revenue is not negative: a period whose refunds outweigh its purchases turns the order around).
select 'daily' as grain, toString(revenue_date) as period, arpu_usd, arppu_usd
from {{ ref('revenue_daily') }} where revenue_usd >= 0 and arppu_usd < arpu_usd
union all
select 'monthly' as grain, toString(revenue_month) as period, arpu_usd, arppu_usd
from {{ ref('arpu_monthly') }} where revenue_usd >= 0 and arppu_usd < arpu_usd
