"""Configuration switches managed vs external services; user files map onto the RAW layout."""

from __future__ import annotations

import gzip
from datetime import date

import pytest

from pulse.config import load_settings
from pulse.lake.ingest_file import IngestError, ingest_file, parse_mapping


def test_defaults_are_managed_local_services(monkeypatch):
    for var in ("PULSE_S3_ENDPOINT", "PULSE_PG_HOST", "PULSE_SPARK_MASTER", "PULSE_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PULSE_CONFIG", "/nonexistent.toml")
    s = load_settings()
    assert s.s3.managed and s.postgres.managed and s.spark.master.startswith("local")


def test_env_points_at_external_services(monkeypatch):
    monkeypatch.setenv("PULSE_S3_ENDPOINT", "https://s3.example.internal")
    monkeypatch.setenv("PULSE_PG_HOST", "db.example.internal")
    monkeypatch.setenv("PULSE_PG_PORT", "6543")
    monkeypatch.setenv("PULSE_SPARK_MASTER", "spark://spark.example.internal:7077")
    s = load_settings()
    assert not s.s3.managed and s.s3.url == "https://s3.example.internal"
    assert not s.postgres.managed and "host=db.example.internal port=6543" in s.postgres.conninfo()


def test_toml_file_is_read_and_env_wins(monkeypatch, tmp_path):
    cfg = tmp_path / "pulse.toml"
    cfg.write_text('[s3]\nendpoint = "http://minio:9000"\nraw_bucket = "lake"\n[pg]\nport = 7000\n')
    monkeypatch.setenv("PULSE_CONFIG", str(cfg))
    monkeypatch.setenv("PULSE_PG_PORT", "7001")
    monkeypatch.delenv("PULSE_S3_ENDPOINT", raising=False)
    s = load_settings()
    assert (s.s3.url, s.s3.raw_bucket, s.postgres.port) == ("http://minio:9000", "lake", 7001)


def test_ingest_renames_header_and_copies_lines_verbatim(tmp_path):
    src = tmp_path / "events.csv"
    lines = [
        "ts,event_type,product_id,category_id,category_code,brand,price,uid,user_session",
        "2019-10-01 00:00:00 UTC,view,1,2,,b,1.5,7,s",
        "garbage line",
    ]
    src.write_text("\n".join(lines) + "\n")
    out = ingest_file(src, tmp_path / "raw", date(2026, 11, 1), parse_mapping(["event_time=ts", "user_id=uid"]), lines_per_part=1)
    assert (out["rows"], out["parts"]) == (2, 2)
    part1 = gzip.decompress((tmp_path / "raw/ingest_date=2026-11-01/part-00001.csv.gz").read_bytes()).decode()
    assert part1.splitlines() == [
        "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session",
        "garbage line",
    ]


def test_ingest_refuses_a_file_without_required_columns(tmp_path):
    src = tmp_path / "events.csv"
    src.write_text("when,what\n1,2\n")
    with pytest.raises(IngestError, match="event_time"):
        ingest_file(src, tmp_path / "raw", date(2026, 11, 1))
    with pytest.raises(IngestError):
        parse_mapping(["not_a_column=x"])
