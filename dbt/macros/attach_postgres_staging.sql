{#
  Expose Postgres `staging` inside ClickHouse through ClickHouse's PostgreSQL database engine, so
  dbt sources are ordinary relations (pulse_pg.events, …). The credentials are not in this project:
  they are in a named collection on the ClickHouse server (Pulse's local service creates it from its
  own configuration; on another server create it once, see the README), so they never reach dbt's
  logs, target/ or ClickHouse's table metadata. Recreated on every run: it holds no data.
#}
{% macro attach_postgres_staging() %}
  {% set db = var('pg_database') %}
  {% do run_query('DROP DATABASE IF EXISTS ' ~ db) %}
  CREATE DATABASE {{ db }} ENGINE = PostgreSQL({{ var('pg_collection') }})
{% endmacro %}
