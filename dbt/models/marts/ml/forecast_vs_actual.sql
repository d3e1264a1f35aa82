-- Grain: day x metric (dau, revenue): the actual of a complete day, the chosen model's forecast (1 day ahead on
-- past days from the backtest, then the next 14 days) and its 80 % interval, from the newest ML run.
-- Built with the other marts, and again after every ML run (`pulse ml forecast`, the DAG's forecast task), so it
-- shows the latest run. Before the first ML run of a source it is empty.
{{ config(order_by=['metric', 'day'], engine='MergeTree()') }}
-- depends_on: {{ ref('user_daily_metrics') }}
-- depends_on: {{ ref('revenue_daily') }}

{%- set forecasts = adapter.get_relation(database=none, schema=var('marts_database'), identifier='ml_forecasts_latest') if execute else none %}
{%- if forecasts is none %}
select
    toDate('1970-01-01') as day,
    '' as metric,
    CAST(NULL, 'Nullable(Float64)') as actual,
    CAST(NULL, 'Nullable(Float64)') as forecast,
    CAST(NULL, 'Nullable(Float64)') as lower,
    CAST(NULL, 'Nullable(Float64)') as upper
where 0
{%- else %}
with chosen as (
    select metric, model from {{ source('pulse_ml', 'ml_model_metrics_latest') }}
    where is_chosen and horizon = 1
),

points as (
    select metric_date as day, 'dau' as metric, 'actual' as kind, CAST(dau, 'Nullable(Float64)') as value
    from {{ ref('user_daily_metrics') }}
    where is_complete
    union all
    select revenue_date, 'revenue', 'actual', CAST(toFloat64(revenue_usd), 'Nullable(Float64)')
    from {{ ref('revenue_daily') }}
    where is_complete
    union all
    select target_date, metric, kv.1, kv.2
    from {{ source('pulse_ml', 'ml_forecasts_latest') }}
    array join [('forecast', CAST(yhat, 'Nullable(Float64)')), ('lower', yhat_lower), ('upper', yhat_upper)] as kv
    where (metric, model) in (select metric, model from chosen) and (not is_backtest or horizon = 1)
)

select
    day,
    metric,
    anyIf(value, kind = 'actual') as actual,
    anyIf(value, kind = 'forecast') as forecast,
    anyIf(value, kind = 'lower') as lower,
    anyIf(value, kind = 'upper') as upper
from points
where day >= (select min(target_date) - 28 from {{ source('pulse_ml', 'ml_forecasts_latest') }})
group by day, metric
{%- endif %}
