-- Grain: period ('week' = ISO week, 'month' = calendar month) x period start x platform x country x
-- acquisition channel x active days. Users of the period by how many days they were active in it
-- (1..7 for a week, 1..31 for a month): the stickiness distribution. Summing `users` over active
-- days gives the period's distinct active users.
{{ config(order_by=['period_type', 'period_start', 'platform', 'country', 'acquisition_channel', 'active_days'], engine='MergeTree()') }}

with user_periods as (
    select 'week' as period_type, toMonday(activity_date) as period_start, user_id, toUInt8(count()) as active_days
    from {{ ref('int_user_daily_activity') }}
    group by period_start, user_id
    union all
    select 'month', toStartOfMonth(activity_date), user_id, toUInt8(count())
    from {{ ref('int_user_daily_activity') }}
    group by toStartOfMonth(activity_date), user_id
)
select
    p.period_type as period_type,
    p.period_start as period_start,
    c.platform as platform,
    c.country as country,
    c.acquisition_channel as acquisition_channel,
    p.active_days as active_days,
    count() as users,
    if(p.period_type = 'week', addDays(p.period_start, 6), toLastDayOfMonth(p.period_start))
        <= (select complete_through from {{ ref('int_source_watermark') }}) as is_complete
from user_periods as p
inner join {{ ref('int_user_cohorts') }} as c on c.user_id = p.user_id
group by period_type, period_start, platform, country, acquisition_channel, active_days
