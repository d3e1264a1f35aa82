-- Grain: one calendar day. A purchase event is one line item and the data has no order id, so this
-- counts purchases, not orders. ARPU = revenue / DAU; ARPPU = revenue / paying users;
-- average purchase value = revenue / purchases.
{{ config(order_by=['revenue_date'], engine='MergeTree()') }}

select
    a.activity_date as revenue_date,
    count() as dau,
    toUInt64(sum(a.purchases)) as purchases,
    toDecimal64(sum(a.revenue_usd), 2) as revenue_usd,
    countIf(a.purchases > 0) as paying_users,
    if(purchases > 0, toFloat64(revenue_usd) / purchases, NULL) as avg_purchase_value_usd,
    toFloat64(revenue_usd) / dau as arpu_usd,
    if(paying_users > 0, toFloat64(revenue_usd) / paying_users, NULL) as arppu_usd,
    revenue_date <= (select complete_through from {{ ref('int_source_watermark') }}) as is_complete
from {{ ref('int_user_daily_activity') }} as a
group by revenue_date
