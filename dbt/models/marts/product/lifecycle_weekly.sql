-- Grain: ISO week (Monday) x platform x country x acquisition channel. Lifecycle of users, PostHog-style:
--   new          active this week, and this is the week of their first activity;
--   returning    active this week and the week before;
--   resurrecting active this week, not the week before, but in some earlier week;
--   dormant      active the week before, not this week (charts show it below zero).
-- new + returning + resurrecting = the week's active users; returning + dormant = last week's.
{{ config(order_by=['week_start', 'platform', 'country', 'acquisition_channel'], engine='MergeTree()') }}

with user_weeks as (
    select distinct toMonday(activity_date) as week_start, user_id from {{ ref('int_user_daily_activity') }}
),
sequenced as (
    select
        w.week_start as week_start,
        c.platform as platform, c.country as country, c.acquisition_channel as acquisition_channel,
        toMonday(c.cohort_date) as first_week,
        lagInFrame(w.week_start, 1, toDate('1970-01-05')) over (
            partition by w.user_id order by w.week_start rows between 1 preceding and current row) as previous_active_week,
        leadInFrame(w.week_start, 1, toDate('2149-06-02')) over (
            partition by w.user_id order by w.week_start rows between current row and 1 following) as next_active_week
    from user_weeks as w
    inner join {{ ref('int_user_cohorts') }} as c on c.user_id = w.user_id
),
last_week as (select max(week_start) as w from user_weeks),
statuses as (
    select week_start, platform, country, acquisition_channel,
           multiIf(week_start = first_week, 'new',
                   previous_active_week = addWeeks(week_start, -1), 'returning',
                   'resurrecting') as status
    from sequenced
    union all
    select addWeeks(week_start, 1), platform, country, acquisition_channel, 'dormant'
    from sequenced
    where next_active_week != addWeeks(week_start, 1) and addWeeks(week_start, 1) <= (select w from last_week)
)
select
    week_start, platform, country, acquisition_channel,
    countIf(status = 'new') as new_users,
    countIf(status = 'returning') as returning_users,
    countIf(status = 'resurrecting') as resurrecting_users,
    countIf(status = 'dormant') as dormant_users,
    addDays(week_start, 6) <= (select complete_through from {{ ref('int_source_watermark') }}) as is_complete
from statuses
group by week_start, platform, country, acquisition_channel
