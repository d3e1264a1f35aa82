-- One user on one day they were active (an event of the `active` role; views and carts are the funnel's
-- first two steps, purchases the revenue role's events).
-- Incremental by day, driven by what changed rather than by a fixed lookback: every day carries a
-- fingerprint of its events (count and a hash sum over every column the marts use). A run rebuilds
-- exactly the days whose fingerprint differs from the stored one (new, late, corrected or removed
-- events, however late they arrive) with delete+insert on the day, and drops days that no longer
-- have events at all.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='activity_date',
    order_by=['activity_date', 'user_id'],
    engine='MergeTree()',
    post_hook=[
        "{% if is_incremental() %}delete from {{ this }} where activity_date not in (select distinct event_date from {{ ref('stg_pulse__events') }}){% endif %}"
    ]
) }}

with day_fingerprints as (
    select
        event_date,
        sum(cityHash64(event_id, event_time, event_type, user_id, session_id, price_usd)) + count() as day_fingerprint
    from {{ ref('stg_pulse__events') }}
    group by event_date
)
{% if is_incremental() %}
-- the CTE exists only in incremental runs, so its comma leads
, changed_days as (  -- noqa: LT04
    select event_date from day_fingerprints
    where (event_date, day_fingerprint) not in (select distinct activity_date, day_fingerprint from {{ this }})
)
{% endif %}
select
    e.event_date as activity_date,
    e.user_id as user_id,
    count() as events,
    uniqExact(e.session_id) as sessions,
    countIf({{ funnel_step(0, 'e.event_type') }}) as views,
    countIf({{ funnel_step(1, 'e.event_type') }}) as carts,
    countIf({{ is_role('revenue', 'e.event_type') }}) as purchases,
    -- net revenue: revenue events' prices minus refunds (-|price|, whether the source gives them negative or not)
    toDecimal64(
        sumIf(e.price_usd, {{ is_role('revenue', 'e.event_type') }})
        - sumIf(abs(e.price_usd), {{ is_role('refund', 'e.event_type') }}),
        2
    ) as revenue_usd,
    any(f.day_fingerprint) as day_fingerprint
from {{ ref('stg_pulse__events') }} as e
inner join day_fingerprints as f on f.event_date = e.event_date
where {{ is_role('active', 'e.event_type') }}
{% if is_incremental() %}
    and e.event_date in (select event_date from changed_days)
{% endif %}
group by activity_date, user_id
