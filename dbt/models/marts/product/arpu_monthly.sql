-- Grain: one calendar month. Active users = distinct users active in the month (calendar MAU).
-- `is_complete`: the whole month is at or before the source's completeness watermark.
{{ config(order_by=['revenue_month'], engine='MergeTree()') }}

select
    toStartOfMonth(activity_date) as revenue_month,
    uniqExact(user_id) as active_users,
    uniqExactIf(user_id, purchases > 0) as paying_users,
    toDecimal64(sum(revenue_usd), 2) as revenue_usd,
    toFloat64(revenue_usd) / active_users as arpu_usd,
    if(paying_users > 0, toFloat64(revenue_usd) / paying_users, NULL) as arppu_usd,
    toLastDayOfMonth(revenue_month) <= (select complete_through from {{ ref('int_source_watermark') }}) as is_complete
from {{ ref('int_user_daily_activity') }}
group by revenue_month
