"""The one way Pulse talks to object storage: the S3 API via boto3 (SeaweedFS, MinIO, AWS alike)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from pulse.config import S3Config


def client(cfg: S3Config, *, access_key: str | None = None, secret_key: str | None = None, retries: int = 3) -> Any:
    return connect(cfg.url, access_key or cfg.access_key, secret_key or cfg.secret_key, cfg.region, retries=retries)


def connect(endpoint_url: str, access_key: str, secret_key: str, region: str, *, retries: int = 3) -> Any:
    """A boto3 S3 client from plain values (what Spark executors receive as data source options)."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=region,
        config=Config(
            retries={"max_attempts": retries, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
            s3={"addressing_style": "path"},
        ),
    )


def ensure_bucket(s3: Any, bucket: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("404", "NoSuchBucket", "NotFound"):
            raise
        s3.create_bucket(Bucket=bucket)


def list_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return keys


def list_etags(s3: Any, bucket: str, prefix: str) -> dict[str, str]:
    """key -> ETag (quotes stripped) of every object under ``prefix``: one LIST, no request per object."""
    etags: dict[str, str] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        etags.update({obj["Key"]: obj["ETag"].strip('"') for obj in page.get("Contents", [])})
    return etags
