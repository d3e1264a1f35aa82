"""Stage 2: the dbt project (``dbt/``) that models Postgres staging into ClickHouse marts."""
