-- Grain: one calendar day. ARPU = revenue / DAU; ARPPU = revenue / paying users; AOV = revenue / orders.
{{ config(order_by=['revenue_date'], engine='MergeTree()') }}

select
    activity_date as revenue_date,
    count() as dau,
    toUInt64(sum(purchases)) as orders,
    toDecimal64(sum(revenue_usd), 2) as revenue_usd,
    countIf(purchases > 0) as paying_users,
    if(orders > 0, toFloat64(revenue_usd) / orders, NULL) as aov_usd,
    toFloat64(revenue_usd) / dau as arpu_usd,
    if(paying_users > 0, toFloat64(revenue_usd) / paying_users, NULL) as arppu_usd
from {{ ref('int_user_daily_activity') }}
group by activity_date
