"""The RAW layer of the lake (S3)."""
