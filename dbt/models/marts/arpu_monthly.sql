-- Grain: one calendar month. Active users = distinct users active in the month (calendar MAU).
{{ config(order_by=['revenue_month'], engine='MergeTree()') }}

select
    toStartOfMonth(activity_date) as revenue_month,
    uniqExact(user_id) as active_users,
    uniqExactIf(user_id, purchases > 0) as paying_users,
    toDecimal64(sum(revenue_usd), 2) as revenue_usd,
    toFloat64(revenue_usd) / active_users as arpu_usd,
    if(paying_users > 0, toFloat64(revenue_usd) / paying_users, NULL) as arppu_usd
from {{ ref('int_user_daily_activity') }}
group by revenue_month
