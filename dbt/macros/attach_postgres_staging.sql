{#
  Expose Postgres `staging` inside ClickHouse through ClickHouse's PostgreSQL database engine, so
  dbt sources are ordinary relations (pulse_pg.events, …). Recreated on every run: it holds no data,
  only the connection, and credentials may have changed.
#}
{% macro attach_postgres_staging() %}
  {% set db = var('pg_database') %}
  {% do run_query('DROP DATABASE IF EXISTS ' ~ db) %}
  CREATE DATABASE {{ db }} ENGINE = PostgreSQL(
    '{{ env_var("PULSE_PG_ADDRESS") }}', '{{ env_var("PULSE_PG_DATABASE") }}',
    '{{ env_var("PULSE_PG_USER") }}', '{{ env_var("PULSE_PG_PASSWORD") }}', 'staging')
{% endmacro %}
