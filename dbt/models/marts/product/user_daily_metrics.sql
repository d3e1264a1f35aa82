-- Grain: one calendar day. DAU = distinct users active that day; WAU / MAU = distinct users active
-- in the 7 / 30 days ending that day (rolling); stickiness = DAU / MAU. Days at the start of the
-- history have shorter windows: `is_full_window` says when all 30 days are inside the data;
-- `is_complete` says the day is at or before the source's completeness watermark.
{{ config(order_by=['metric_date'], engine='MergeTree()') }}

with activity as (
    select activity_date, user_id from {{ ref('int_user_daily_activity') }}
),
bounds as (
    select min(activity_date) as first_date, max(activity_date) as last_date from activity
),
spread as (
    -- each active user-day counts towards the 30 days it is inside the window of
    select addDays(activity_date, toInt32(offset)) as metric_date, user_id, offset
    from activity
    array join range(30) as offset
)
select
    metric_date,
    uniqExactIf(user_id, offset = 0) as dau,
    uniqExactIf(user_id, offset < 7) as wau,
    uniqExact(user_id) as mau,
    dau / mau as stickiness,
    metric_date >= addDays((select first_date from bounds), 29) as is_full_window,
    metric_date <= (select complete_through from {{ ref('int_source_watermark') }}) as is_complete
from spread
where metric_date <= (select last_date from bounds)
group by metric_date
