-- Grain: day x platform x country x acquisition channel. DAU, rolling 7-day WAU and 30-day MAU per
-- segment (a user has one segment, so summing segments gives user_daily_metrics exactly).
-- Computed in O(user-days), not x30: an active day opens a window of W days that lasts until it
-- ends or the user's next active day, whichever is first; these windows never overlap, so
-- "+1 where a window opens, -1 where it closes", summed over days, is the number of users inside.
{{ config(order_by=['metric_date', 'platform', 'country', 'acquisition_channel'], engine='MergeTree()') }}

with activity as (
    select
        a.activity_date as activity_date,
        c.platform as platform,
        c.country as country,
        c.acquisition_channel as acquisition_channel,
        leadInFrame(a.activity_date, 1, toDate('2149-06-06')) over (
            partition by a.user_id order by a.activity_date rows between current row and 1 following
        ) as next_active_date
    from {{ ref('int_user_daily_activity') }} as a
    inner join {{ ref('int_user_cohorts') }} as c on c.user_id = a.user_id
),
bounds as (
    select min(activity_date) as first_date, max(activity_date) as last_date from {{ ref('int_user_daily_activity') }}
),
changes as (
    select activity_date as change_date, platform, country, acquisition_channel,
           toInt64(1) as dau_change, toInt64(1) as wau_change, toInt64(1) as mau_change
    from activity
    union all
    select addDays(activity_date, 1), platform, country, acquisition_channel, toInt64(-1), toInt64(0), toInt64(0)
    from activity
    union all
    select least(addDays(activity_date, 7), next_active_date), platform, country, acquisition_channel, toInt64(0), toInt64(-1), toInt64(0)
    from activity
    union all
    select least(addDays(activity_date, 30), next_active_date), platform, country, acquisition_channel, toInt64(0), toInt64(0), toInt64(-1)
    from activity
),
daily_changes as (
    select change_date, platform, country, acquisition_channel,
           sum(dau_change) as dau_change, sum(wau_change) as wau_change, sum(mau_change) as mau_change
    from changes
    group by change_date, platform, country, acquisition_channel
),
days as (
    select arrayJoin(arrayMap(i -> addDays(first_date, i), range(toUInt32(dateDiff('day', first_date, last_date) + 1)))) as metric_date
    from bounds
),
segments as (select distinct platform, country, acquisition_channel from activity),
running as (
    select
        d.metric_date as metric_date,
        s.platform as platform,
        s.country as country,
        s.acquisition_channel as acquisition_channel,
        sum(ch.dau_change) over w as dau,
        sum(ch.wau_change) over w as wau,
        sum(ch.mau_change) over w as mau
    from days as d
    cross join segments as s
    left join daily_changes as ch
        on ch.change_date = d.metric_date and ch.platform = s.platform
        and ch.country = s.country and ch.acquisition_channel = s.acquisition_channel
    window w as (partition by s.platform, s.country, s.acquisition_channel order by d.metric_date
                 rows between unbounded preceding and current row)
)
select
    metric_date, platform, country, acquisition_channel,
    toUInt64(dau) as dau, toUInt64(wau) as wau, toUInt64(mau) as mau,
    metric_date <= (select complete_through from {{ ref('int_source_watermark') }}) as is_complete
from running
where mau > 0
