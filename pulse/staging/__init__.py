"""Stage 1: RAW (S3) -> Spark cleaning -> PostgreSQL ``staging``."""
