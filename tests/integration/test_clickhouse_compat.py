"""The same client scenarios against Pulse's local ClickHouse service (chDB over the HTTP interface)
or, when PULSE_CH_COMPAT_URL=http(s)://user:password@host:port is set, against a real ClickHouse
server (PULSE_CH_COMPAT_BI_URL likewise names its read-only user): compatibility is checked, not
assumed. Security, faithfulness and concurrency cases are in test_clickhouse_server.py."""

from __future__ import annotations

import base64
import gzip
import json
import os
import threading
import urllib.error
import urllib.request
import uuid
from datetime import datetime

import clickhouse_connect
import pytest
import sqlalchemy as sa
from clickhouse_connect.driver.exceptions import DatabaseError

pytestmark = pytest.mark.integration


@pytest.fixture
def client(ch):
    host, port, user, password, database = ch
    return clickhouse_connect.get_client(host=host, port=port, username=user, password=password, database=database)


@pytest.fixture
def table(client):
    name = f"compat_{uuid.uuid4().hex[:8]}"
    client.command(
        f"CREATE TABLE {name} (id UInt32, name String, ts DateTime, amount Decimal(12, 2), score Float64) "
        "ENGINE = MergeTree ORDER BY id"
    )
    yield name
    client.command(f"DROP TABLE IF EXISTS {name}")


ROWS = [[i, f"user {i}", datetime(2026, 10, 1, 12, i % 60), f"{i}.25", i / 3] for i in range(1, 501)]
COLUMNS = ["id", "name", "ts", "amount", "score"]


def _raw(ch, sql: str, password: str | None = None, headers: dict | None = None, **params: str):
    host, port, user, pw, _ = ch
    qs = "&".join(f"{k}={v}" for k, v in params.items())
    token = base64.b64encode(f"{user}:{pw if password is None else password}".encode()).decode()
    req = urllib.request.Request(
        f"http://{host}:{port}/?{qs}", data=sql.encode(), headers={"Authorization": f"Basic {token}", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_ping_and_connect_probe(ch, client):
    host, port, *_ = ch
    with urllib.request.urlopen(f"http://{host}:{port}/ping", timeout=5) as resp:
        assert resp.read() == b"Ok.\n"
    assert client.server_version
    assert client.query("SELECT 1 + 1").result_rows == [(2,)]


@pytest.mark.parametrize("compress", [None, "lz4", "zstd", "gzip"])
def test_insert_and_read_back_with_compression(ch, table, compress):
    host, port, user, password, database = ch
    c = clickhouse_connect.get_client(
        host=host, port=port, username=user, password=password, database=database, compress=compress or False
    )
    c.insert(table, ROWS, column_names=COLUMNS)
    got = c.query(f"SELECT id, name, ts, toString(amount), score FROM {table} ORDER BY id").result_rows
    assert len(got) == 500 and got[0] == (1, "user 1", datetime(2026, 10, 1, 12, 1), "1.25", 1 / 3)
    assert c.query(f"SELECT sum(amount) FROM {table}").result_rows[0][0] == sum(i + 0.25 for i in range(1, 501))


def test_dataframe_arrow_and_text_formats(client, table):
    client.insert(table, ROWS[:10], column_names=COLUMNS)
    df = client.query_df(f"SELECT id, name FROM {table} ORDER BY id")
    assert list(df["id"]) == list(range(1, 11))
    assert client.query_arrow(f"SELECT id FROM {table}").num_rows == 10
    tsv = client.raw_query(f"SELECT id, name FROM {table} ORDER BY id LIMIT 2 FORMAT TabSeparated")
    assert tsv == b"1\tuser 1\n2\tuser 2\n"
    assert int(json.loads(client.raw_query(f"SELECT count() AS n FROM {table} FORMAT JSONEachRow"))["n"]) == 10
    assert len(client.raw_query(f"SELECT id FROM {table} FORMAT RowBinary")) == 10 * 4  # UInt32 each
    assert client.raw_query(f"SELECT id FROM {table} ORDER BY id LIMIT 1 FORMAT CSV") == b"1\n"
    client.insert_df(table, df.assign(ts=datetime(2026, 1, 1), amount=1, score=0.5, id=df["id"] + 100))
    assert client.query(f"SELECT count() FROM {table}").result_rows == [(20,)]


def test_url_settings_apply_to_that_request_only(client):
    sql = "SELECT value FROM system.settings WHERE name = 'max_block_size'"
    assert client.query(sql, settings={"max_block_size": 1234}).result_rows == [("1234",)]
    assert client.query(sql).result_rows != [("1234",)]


def test_errors_come_back_like_clickhouse(ch, client):
    with pytest.raises(DatabaseError, match="60"):
        client.query("SELECT * FROM no_such_table_here")
    status, headers, body = _raw(ch, "SELECT * FROM no_such_table_here")
    assert status == 404 and headers["X-ClickHouse-Exception-Code"] == "60" and body.startswith(b"Code: 60. DB::Exception")
    status, headers, _ = _raw(ch, "SELEC 1")
    assert status == 400 and headers["X-ClickHouse-Exception-Code"] == "62"


def test_wrong_password_is_refused(ch):
    host, port, user, _, _ = ch
    with pytest.raises(DatabaseError, match="516"):
        clickhouse_connect.get_client(host=host, port=port, username=user, password="wrong")
    status, headers, _ = _raw(ch, "SELECT 1", password="wrong")
    assert status == 401 and headers["X-ClickHouse-Exception-Code"] == "516"


@pytest.mark.parametrize("encoding", ["gzip", "zstd", "lz4"])
def test_compressed_request_and_response(ch, encoding):
    import lz4.frame
    import zstandard

    pack = {"gzip": gzip.compress, "zstd": zstandard.ZstdCompressor().compress, "lz4": lz4.frame.compress}[encoding]
    unpack = {
        "gzip": gzip.decompress,
        "zstd": lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b),
        "lz4": lz4.frame.decompress,
    }[encoding]
    host, port, user, pw, _ = ch
    token = base64.b64encode(f"{user}:{pw}".encode()).decode()
    req = urllib.request.Request(
        f"http://{host}:{port}/?enable_http_compression=1",
        data=pack(b"SELECT number FROM numbers(1000) FORMAT TabSeparated"),
        headers={"Authorization": f"Basic {token}", "Content-Encoding": encoding, "Accept-Encoding": encoding},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.headers["Content-Encoding"] == encoding
        assert unpack(resp.read()).count(b"\n") == 1000


def test_sqlalchemy_dialect_inspection(ch, table):
    host, port, user, password, database = ch
    engine = sa.create_engine(f"clickhousedb://{user}:{password}@{host}:{port}/{database}")
    insp = sa.inspect(engine)
    assert table in insp.get_table_names()
    assert [c["name"] for c in insp.get_columns(table)] == COLUMNS
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 42")).scalar() == 42


def test_concurrent_writers_and_readers(ch, table):
    host, port, user, password, database = ch
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            c = clickhouse_connect.get_client(host=host, port=port, username=user, password=password, database=database)
            for b in range(10):
                c.insert(
                    table,
                    [[n * 1000 + b * 10 + i, "w", datetime(2026, 1, 1), "1.00", 1.0] for i in range(10)],
                    column_names=COLUMNS,
                )
                c.query(f"SELECT count() FROM {table}")
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and not any(t.is_alive() for t in threads)
    c = clickhouse_connect.get_client(host=host, port=port, username=user, password=password, database=database)
    assert c.query(f"SELECT count(), uniqExact(id) FROM {table}").result_rows == [(600, 600)]


def test_data_survives_a_clean_restart(ch, client, table, stack_home):
    if os.environ.get("PULSE_CH_COMPAT_URL"):
        pytest.skip("restarts only the local service")
    from pulse.services.clickhouse import ClickHouse

    client.insert(table, ROWS[:5], column_names=COLUMNS)
    svc = ClickHouse(stack_home)
    svc.stop()
    assert not svc.healthy()[0]
    assert "stopped" in svc.log_path.read_text()  # SIGTERM -> the engine session was closed, not killed
    svc.start()
    host, port, user, password, database = ch
    fresh = clickhouse_connect.get_client(host=host, port=port, username=user, password=password, database=database)
    assert fresh.query(f"SELECT count() FROM {table}").result_rows == [(5,)]
