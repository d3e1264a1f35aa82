-- Grain: day x platform x country x acquisition channel (first-seen dimensions of the user).
-- For segmentation charts: active users, paying users, revenue.
{{ config(order_by=['activity_date', 'platform', 'country', 'acquisition_channel'], engine='MergeTree()') }}

select
    a.activity_date as activity_date,
    c.platform as platform,
    c.country as country,
    c.acquisition_channel as acquisition_channel,
    count() as active_users,
    countIf(a.purchases > 0) as paying_users,
    toDecimal64(sum(a.revenue_usd), 2) as revenue_usd
from {{ ref('int_user_daily_activity') }} as a
inner join {{ ref('int_user_cohorts') }} as c on c.user_id = a.user_id
group by activity_date, platform, country, acquisition_channel
