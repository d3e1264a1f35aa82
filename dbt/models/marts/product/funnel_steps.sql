-- Grain: day x platform x country x acquisition channel x funnel step: users who reached the step that day
-- (the ordered funnel of segments_daily, one row per step, for the funnel chart).
{{ config(order_by=['activity_date', 'platform', 'country', 'acquisition_channel', 'step_order'], engine='MergeTree()') }}

select
    activity_date,
    platform,
    country,
    acquisition_channel,
    s.1 as step_order,
    s.2 as step,
    s.3 as users
from {{ ref('segments_daily') }}
array join [(1, '1. viewed', funnel_viewers), (2, '2. added to cart', funnel_carters), (3, '3. purchased', funnel_purchasers)] as s
