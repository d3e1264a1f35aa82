"""The ClickHouse warehouse (chDB engine behind the ClickHouse HTTP protocol)."""
