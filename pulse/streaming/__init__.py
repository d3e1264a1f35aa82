"""Stage 4: live events through Kafka and Spark Structured Streaming into ClickHouse, exactly once."""
