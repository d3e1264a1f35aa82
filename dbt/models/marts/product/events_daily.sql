-- Grain: one day x event type. Events and distinct users of each type: the batch side of
-- `pulse stream reconcile` (the realtime tables count the same per day) and a volume check.
{{ config(order_by=['event_date', 'event_type'], engine='MergeTree()') }}

select
    event_date,
    event_type,
    count() as events,
    uniqExact(user_id) as users
from {{ ref('stg_pulse__events') }}
group by event_date, event_type
