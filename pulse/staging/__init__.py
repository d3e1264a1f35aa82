"""Cleaning: RAW (S3) -> Spark cleaning -> PostgreSQL ``staging``."""
