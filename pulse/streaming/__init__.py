"""Streaming: live events through Kafka and Spark Structured Streaming into ClickHouse, exactly once."""
