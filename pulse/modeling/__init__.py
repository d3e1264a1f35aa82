"""Modelling: the dbt project (``dbt/``) that models Postgres staging into ClickHouse marts."""
