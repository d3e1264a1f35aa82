"""Configuration switches managed vs external services; user files map onto the RAW layout."""

from __future__ import annotations

import gzip
import json
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


def test_metadata_urls_survive_any_password(monkeypatch):
    from sqlalchemy.engine import make_url

    monkeypatch.setenv("PULSE_PG_HOST", "db.example.internal")
    pg = load_settings().postgres
    url = make_url(pg.sqlalchemy_url("psycopg", "air flow", "p@ss:w/rd%?#", "airflow"))
    assert (url.drivername, url.username, url.password, url.host, url.database) == (
        "postgresql+psycopg",
        "air flow",
        "p@ss:w/rd%?#",
        "db.example.internal",
        "airflow",
    )
    assert url.query == {"sslmode": pg.sslmode}


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


def test_ingest_date_defaults_to_the_latest_event_and_refuses_a_past_one(tmp_path):
    src = tmp_path / "export.csv"
    rows = [f"2019-10-{d:02d} 10:00:00 UTC,view,1,2,,b,1.5,7,s" for d in range(1, 11)]
    src.write_text(
        "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n" + "\n".join(rows) + "\n"
    )
    out = ingest_file(src, tmp_path / "raw")
    assert out["ingest_date"] == "2019-10-10" and (tmp_path / "raw/ingest_date=2019-10-10").is_dir()
    with pytest.raises(IngestError, match=r"8 of 10 lines are dated after --ingest-date 2019-10-01 \+ 1 day.*2019-10-10"):
        ingest_file(src, tmp_path / "other", date(2019, 10, 1))
    assert not (tmp_path / "other/ingest_date=2019-10-01").exists()


def test_generate_never_deletes_a_directory_it_did_not_make(tmp_path):
    from pulse.datagen import DatasetDirError, generate_dataset
    from pulse.datagen.events import GenParams

    precious = tmp_path / "photos"
    precious.mkdir()
    (precious / "holiday.jpg").write_bytes(b"\xff\xd8")
    params = GenParams(n_events=500, days=5, end_date=date(2026, 10, 31), seed=1)
    with pytest.raises(DatasetDirError):
        generate_dataset(precious, params)
    assert (precious / "holiday.jpg").exists()
    ours = tmp_path / "ds"
    first = generate_dataset(ours, params)
    (ours / "ingest_date=2020-01-01").mkdir()  # a leftover inside its own output …
    assert generate_dataset(ours, params) == first  # … which it may replace whole: same seed, same truth
    assert not (ours / "ingest_date=2020-01-01").exists()
    assert {k: v for k, v in json.loads((ours / "ground_truth.json").read_text()).items() if k != "params"} == {
        k: v for k, v in first.items() if k != "params"
    }


def test_source_names_are_checked_at_the_command_line(capsys):
    from pulse.cli import main

    for bad in ["../../etc", "x'; DROP TABLE t; --", "Demo", "a__b"]:
        with pytest.raises(SystemExit) as err:
            main(["model", "build", "--source", bad])
        assert err.value.code == 2
        assert "source name" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["ingest-file", "x.csv", "--source", "../up"])


def test_demo_sizes_get_their_own_source():
    from pulse.cli import build_parser, demo_source

    parse = build_parser().parse_args
    assert demo_source(parse(["demo"])) == "demo"
    assert demo_source(parse(["demo", "--events", "1000000"])) == "demo_1000000"
    other = demo_source(parse(["demo", "--events", "1000000", "--seed", "7"]))
    assert other.startswith("demo_1000000_") and other != "demo_1000000"


def test_services_down_reports_truthfully(monkeypatch, tmp_path):
    from pulse.config import load_settings
    from pulse.services import registry

    monkeypatch.setenv("PULSE_HOME", str(tmp_path))
    lines: list[str] = []
    assert registry.down(load_settings(), echo=lines.append) == []  # nothing left running: success
    assert "  spark: nothing to stop (runs inside each job's process)" in lines
    assert not any(line.startswith("  spark: stopped") for line in lines)


def test_loading_the_settings_writes_nothing_and_services_need_the_secrets_step(monkeypatch, tmp_path):
    from pulse.config import ensure_secrets, load_settings
    from pulse.services import registry

    monkeypatch.setenv("PULSE_HOME", str(tmp_path))
    monkeypatch.setenv("PULSE_PG_PASSWORD", "configured")
    before = load_settings()
    assert not tmp_path.exists() or not any(tmp_path.iterdir())
    with pytest.raises(registry.MissingSecrets, match="ensure_secrets"):
        registry.up(before, ["spark"], echo=lambda _m: None)
    created = ensure_secrets()
    assert "pg_password" not in created and {"pg_admin_password", "ch_password", "kafka_password"} <= set(created)
    after = load_settings()
    assert after.postgres.password == "configured"
    assert after.clickhouse.password == (tmp_path / "secrets" / "ch_password").read_text()
    assert all((tmp_path / "secrets" / name).stat().st_mode & 0o777 == 0o600 for name in created)
