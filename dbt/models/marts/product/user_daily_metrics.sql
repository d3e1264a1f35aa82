-- Grain: one calendar day. DAU = distinct users active that day; WAU / MAU = distinct users active
-- in the 7 / 30 days ending that day (rolling); stickiness = DAU / MAU. Days at the start of the
-- history have shorter windows: `is_full_window` says when all 30 days are inside the data;
-- `is_complete` says the day is at or before the source's completeness watermark.
-- Computed in O(user-days), not x30 (as user_daily_metrics_by_segment, without the segments): an
-- active day opens a window of W days that lasts until it ends or the user's next active day,
-- whichever is first; the windows of one user never overlap, so "+1 where a window opens, -1 where
-- it closes", summed over the days so far, is the number of users inside.
{{ config(order_by=['metric_date'], engine='MergeTree()') }}

with activity as (
    select
        activity_date,
        leadInFrame(activity_date, 1, toDate('2149-06-06')) over (
            partition by user_id order by activity_date rows between current row and 1 following
        ) as next_active_date
    from {{ ref('int_user_daily_activity') }}
),

bounds as (
    select
        min(activity_date) as first_date,
        max(activity_date) as last_date
    from activity
),

changes as (
    select
        activity_date as change_date,
        toInt64(1) as dau_change,
        toInt64(1) as wau_change,
        toInt64(1) as mau_change
    from activity
    union all
    select addDays(activity_date, 1), toInt64(-1), toInt64(0), toInt64(0)
    from activity
    union all
    select least(addDays(activity_date, 7), next_active_date), toInt64(0), toInt64(-1), toInt64(0)
    from activity
    union all
    select least(addDays(activity_date, 30), next_active_date), toInt64(0), toInt64(0), toInt64(-1)
    from activity
),

daily_changes as (
    select
        change_date,
        sum(dau_change) as dau_change,
        sum(wau_change) as wau_change,
        sum(mau_change) as mau_change
    from changes
    group by change_date
),

days as (
    select
        arrayJoin(
            arrayMap(i -> addDays(first_date, i), range(toUInt32(dateDiff('day', first_date, last_date) + 1)))
        ) as metric_date
    from bounds
),

running as (
    select
        d.metric_date as metric_date,
        sum(ch.dau_change) over w as dau,
        sum(ch.wau_change) over w as wau,
        sum(ch.mau_change) over w as mau
    from days as d
    left join daily_changes as ch on d.metric_date = ch.change_date
    window w as (order by d.metric_date rows between unbounded preceding and current row)
)

select
    metric_date,
    toUInt64(dau) as dau,
    toUInt64(wau) as wau,
    toUInt64(mau) as mau,
    dau / mau as stickiness,
    metric_date >= addDays((select first_date from bounds), 29) as is_full_window,
    metric_date <= (select complete_through from {{ ref('int_source_watermark') }}) as is_complete
from running
where mau > 0
