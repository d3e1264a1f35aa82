-- One user with their cohort (first active day and month) and segmentation dimensions.
{{ config(order_by=['user_id'], engine='MergeTree()') }}

select
    a.user_id as user_id,
    a.cohort_date as cohort_date,
    toStartOfMonth(a.cohort_date) as cohort_month,
    u.platform as platform,
    u.country as country,
    u.acquisition_channel as acquisition_channel
from (
    select user_id, min(activity_date) as cohort_date
    from {{ ref('int_user_daily_activity') }}
    group by user_id
) as a
left join {{ ref('stg_pulse__users') }} as u on u.user_id = a.user_id
