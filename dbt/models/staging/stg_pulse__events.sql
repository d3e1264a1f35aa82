-- One clean event of the selected source, typed for ClickHouse.
-- Incremental by event day: a build takes again only the days that the loads since the previous build
-- touched (new, late or re-sessionised events), and everything after a full refresh; days that no
-- longer have events go (macro staged_loads).
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='event_date',
    order_by=['event_date', 'user_id'],
    engine='MergeTree()',
    post_hook=[
        "{% if is_incremental() %}delete from {{ this }} where event_date not in (select event_date from {{ source('pulse_staging', 'daily_event_counts') }} where source = '{{ var('pulse_source') }}'){% endif %}"
    ]
) }}

{%- set loads = staged_loads() %}

select
    e.event_id,
    toDateTime64(e.event_time, 3, 'UTC') as event_time,
    toDate(e.event_date) as event_date,
    e.event_type,
    e.user_id,
    e.session_id,
    e.product_id,
    e.category_code,
    e.brand,
    toDecimal64(coalesce(e.price_usd, 0), 2) as price_usd,
    coalesce(e.platform, 'unknown') as platform,
    coalesce(e.country, 'unknown') as country,
    coalesce(e.channel, 'unknown') as channel,
    e.is_late = 1 as is_late,
    e.properties,
    toDateTime64('{{ loads.through or "1970-01-01 00:00:00" }}', 6, 'UTC') as staged_through
-- the filters name the source's own columns (e.), not the typed aliases above: ClickHouse hands them
-- to Postgres, which reads the touched days by index instead of the whole source
from {{ source('pulse_staging', 'events') }} as e
where
    e.source = '{{ var("pulse_source") }}'
    {%- if is_incremental() and not loads.all %}
        and e.event_date in ({{ "'" ~ (loads.days | join("', '")) ~ "'" if loads.days else "NULL" }})
    {%- endif %}
