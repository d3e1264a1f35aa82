"""Stage 2: the ClickHouse warehouse (chDB engine behind the ClickHouse HTTP protocol)."""
