-- Grain: day x platform x country x acquisition channel (the user's first-seen dimensions, so every
-- user is in exactly one segment and user counts add up across segments exactly).
-- The segment-grain twin of the daily marts, for dashboard filters: active, new and paying users,
-- purchases, revenue, and the ordered funnel steps (users per day, see int_user_daily_funnel).
{{ config(order_by=['activity_date', 'platform', 'country', 'acquisition_channel'], engine='MergeTree()') }}

select
    a.activity_date as activity_date,
    c.platform as platform,
    c.country as country,
    c.acquisition_channel as acquisition_channel,
    count() as active_users,
    countIf(c.cohort_date = a.activity_date) as new_users,
    countIf(a.purchases > 0) as paying_users,
    toUInt64(sum(a.purchases)) as purchases,
    toDecimal64(sum(a.revenue_usd), 2) as revenue_usd,
    countIf(f.funnel_level >= 1) as funnel_viewers,
    countIf(f.funnel_level >= 2) as funnel_carters,
    countIf(f.funnel_level >= {{ [funnel_steps() | length, 2] | max }}) as funnel_purchasers,  -- the last step
    a.activity_date <= (select complete_through from {{ ref('int_source_watermark') }}) as is_complete
from {{ ref('int_user_daily_activity') }} as a
inner join {{ ref('int_user_cohorts') }} as c on c.user_id = a.user_id
-- left: a source without a funnel has no funnel rows (its funnel columns are 0)
left join {{ ref('int_user_daily_funnel') }} as f on f.event_date = a.activity_date and f.user_id = a.user_id
group by activity_date, platform, country, acquisition_channel
