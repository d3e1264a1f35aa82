"""The ClickHouse service as an attacker, a client library and a busy dashboard would use it.

Each case is a request a real ClickHouse server answers in a known way; they run against Pulse's
local service or, with PULSE_CH_COMPAT_URL (and PULSE_CH_COMPAT_BI_URL), against a real server.
"""

from __future__ import annotations

import base64
import http.client
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import clickhouse_connect
import lz4.frame
import pytest

from pulse.common.waiting import wait_until

pytestmark = pytest.mark.integration
LOCAL_ONLY = pytest.mark.skipif(bool(os.environ.get("PULSE_CH_COMPAT_URL")), reason="inspects the local service")
SLOW_SQL = "SELECT sum(sipHash64(number)) FROM numbers(20000000000)"  # minutes: only ever cancelled


def slow_sql(marker: str) -> str:
    """SLOW_SQL with a marker in its text, so system.processes can tell when it runs."""
    return f"SELECT sum(sipHash64(number)) + 0 * length('{marker}') FROM numbers(20000000000)"


def request(ch, sql: str | bytes = b"", *, method: str = "POST", params: dict | None = None, headers: dict | None = None,
            auth: tuple[str, str] | None = None, body: bytes | None = None):  # fmt: skip
    """(status, headers, body) of one HTTP request to the server under test."""
    host, port, user, password, _ = ch
    user, password = auth or (user, password)
    hdrs = {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode(), **(headers or {})}
    params = {k: v for k, v in {"database": ch[4], **(params or {})}.items() if v is not None}  # None: leave it out
    query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in params.items())
    conn = http.client.HTTPConnection(host, port, timeout=60)
    payload = body if body is not None else (sql.encode() if isinstance(sql, str) else sql)
    if method == "GET":
        query = "&".join(filter(None, [query, "query=" + quote(sql)]))
        payload = None
    conn.request(method, "/?" + query, body=payload, headers=hdrs)
    resp = conn.getresponse()
    out = resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    conn.close()
    return out


def code(headers: dict) -> int | None:
    return int(headers["x-clickhouse-exception-code"]) if "x-clickhouse-exception-code" in headers else None


@pytest.fixture
def client(ch):
    host, port, user, password, database = ch
    return clickhouse_connect.get_client(host=host, port=port, username=user, password=password, database=database)


BI_DATABASE_SUFFIX = "_srvtest"  # a marts-like database (<db>_<source>) the reader may read


@pytest.fixture
def bi_client(ch, ch_bi, client):
    host, port, *_, database = ch
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}{BI_DATABASE_SUFFIX}")
    return clickhouse_connect.get_client(
        host=host, port=port, username=ch_bi[0], password=ch_bi[1], database=database + BI_DATABASE_SUFFIX
    )


@pytest.fixture
def table(client):
    name = f"srv_{uuid.uuid4().hex[:8]}"
    client.command(f"CREATE TABLE {name} (id UInt32, name String) ENGINE = MergeTree ORDER BY id")
    yield name
    client.command(f"DROP TABLE IF EXISTS {name}")


# -- 1. not a remote shell -------------------------------------------------------------------------
def test_get_is_read_only(ch, table):
    status, headers, _ = request(ch, f"INSERT INTO {table} VALUES (1, 'x')", method="GET")
    assert status == 403 and code(headers) == 164
    status, headers, body = request(ch, f"SELECT count() FROM {table}", method="GET")
    assert status == 200 and body == b"0\n"


def test_multi_statements_are_refused(ch, table):
    status, headers, _ = request(ch, f"SELECT 1; INSERT INTO {table} VALUES (1, 'x')")
    assert status == 400 and code(headers) == 62
    assert request(ch, f"SELECT count() FROM {table}")[2] == b"0\n"
    assert request(ch, "SELECT 1;")[2] == b"1\n"


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
        "SELECT file('/etc/hostname')",
        "INSERT INTO FUNCTION file('{probe}', 'CSV') SELECT 1",
        "SELECT * FROM url('http://127.0.0.1:9/', 'CSV')",
        "SELECT * FROM s3('http://127.0.0.1:9/b/k.csv', 'CSV')",
        "SELECT * FROM remote('127.0.0.1:9000', system.one)",
        "SELECT * FROM postgresql('127.0.0.1:5432', 'db', 't', 'u', 'p')",
        "SELECT * FROM executable('id', 'TSV', 'x String')",
        "SELECT * FROM (SELECT * FROM FILE('/etc/passwd', 'LineAsString'))",
        "CREATE TABLE srv_file (x String) ENGINE = File(CSV, '{probe}')",
        "CREATE TABLE srv_url (x String) ENGINE = URL('http://127.0.0.1:9/', CSV)",
        "CREATE DATABASE srv_pg ENGINE = PostgreSQL('127.0.0.1:5432', 'db', 'u', 'p')",
        "CREATE DICTIONARY srv_d (k UInt64, v String) PRIMARY KEY k SOURCE(FILE(path '/etc/passwd' format 'CSV')) "
        "LAYOUT(FLAT()) LIFETIME(0)",
        "SELECT 1 INTO OUTFILE '{probe}'",
        "BACKUP TABLE system.one TO File('{probe}')",
        "SYSTEM SHUTDOWN",
        "SELECT * FROM system.named_collections",
    ],
)
def test_host_and_network_reaching_statements_are_refused(ch, sql, tmp_path):
    probe = tmp_path / "written-by-clickhouse"
    status, headers, body = request(ch, sql.replace("{probe}", str(probe)))
    assert status in (403, 400) and code(headers) in (497, 164, 62), body
    assert not probe.exists()


def test_read_only_bi_user(ch, ch_bi, bi_client, client):
    marts = ch[4] + BI_DATABASE_SUFFIX
    table = f"{marts}.srv_bi_{uuid.uuid4().hex[:6]}"
    client.command(f"CREATE TABLE {table} (id UInt32, name String) ENGINE = MergeTree ORDER BY id")
    client.insert(table, [[1, "a"]], column_names=["id", "name"])
    assert bi_client.query(f"SELECT count() FROM {table}").result_rows == [(1,)]
    bi = {"auth": ch_bi, "params": {"database": marts}}
    for sql, want in [
        (f"INSERT INTO {table} VALUES (2, 'b')", 164),
        (f"DROP TABLE {table}", 164),
        ("CREATE TABLE srv_bi (x UInt8) ENGINE = Memory", 164),
        ("SET readonly = 0", 164),
        ("SELECT * FROM pulse_pg.events", 497),  # the Postgres staging tables, through the stored credentials
        ("USE pulse_pg", 497),
        ("SELECT * FROM merge('pulse_pg', '.*')", 497),
        ("SELECT * FROM system.processes", 497),  # other users' queries
        (f"SELECT * FROM {ch[4]}.anything", 497),  # the writer's scratch database is not a marts database
        (f"SELECT * FROM {ch[4]}_demo__build.stg_pulse__events", 497),  # nor is a build (unpublished) database
    ]:
        _, headers, body = request(ch, sql, **bi)
        assert code(headers) == want, (sql, body)
    assert request(ch, f"SELECT count() FROM {table}", **bi)[2] == b"1\n"
    client.command(f"DROP TABLE {table}")


@LOCAL_ONLY
def test_postgres_password_never_reaches_a_client(ch, stack_home, client):
    pw = stack_home.postgres.password
    status, _, body = request(ch, "SELECT * FROM system.named_collections")
    assert status == 403 and pw.encode() not in body
    client.command("DROP DATABASE IF EXISTS srv_pg_probe")
    client.command("CREATE DATABASE srv_pg_probe ENGINE = PostgreSQL(pulse_pg)")  # the one allowed form
    shown = client.command("SHOW CREATE DATABASE srv_pg_probe")
    assert "pulse_pg" in shown and pw not in shown
    client.command("DROP DATABASE srv_pg_probe")


def test_password_in_the_url_is_refused(ch):
    host, port, user, password, _ = ch
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("POST", f"/?user={user}&password={password}", body=b"SELECT 1")
    resp = conn.getresponse()
    assert resp.status == 401 and resp.getheader("X-ClickHouse-Exception-Code") == "516"


def _raw_exchange(ch, head: bytes, body: bytes = b"", wait: float = 10) -> bytes:
    """Send bytes on a raw socket; what the server answers before closing or ``wait`` seconds."""
    host, port, *_ = ch
    with socket.create_connection((host, port), timeout=wait) as sock:
        sock.sendall(head + body)
        chunks = []
        try:
            while data := sock.recv(65536):
                chunks.append(data)
                if b"\r\n\r\n" in b"".join(chunks):
                    break
        except TimeoutError:
            pass
    return b"".join(chunks)


def _auth(user: str, password: str) -> bytes:
    return b"Authorization: Basic " + base64.b64encode(f"{user}:{password}".encode()) + b"\r\n"


@LOCAL_ONLY
def test_request_limits_and_auth_before_body(ch):
    _, _, user, password, _ = ch
    t0 = time.monotonic()
    # a body announced larger than the limit: refused at once, without waiting for it
    answer = _raw_exchange(ch, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000000\r\n" + _auth(user, password) + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 413")
    # a wrong password: refused before a byte of the (never sent) body is awaited
    answer = _raw_exchange(ch, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n" + _auth(user, "wrong") + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 401")
    answer = _raw_exchange(ch, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n" + _auth(user, password) + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 400") and b"X-ClickHouse-Exception-Code: 36" in answer
    assert time.monotonic() - t0 < 5


def test_undecodable_bodies_get_clickhouse_errors(ch):
    status, headers, body = request(ch, b"not gzip at all", headers={"Content-Encoding": "gzip"})
    assert status == 400 and code(headers) is not None and body.startswith(b"Code: ")
    status, headers, body = request(ch, b"SELECT '\xff\xfe'")
    assert status == 400 and code(headers) is not None
    status, headers, body = request(ch, "SELECT no_such_column FROM system.one")
    assert status == 404 and code(headers) == 47 and b"DB::Exception" in body


def test_use_in_one_request_does_not_move_another(ch):
    database = ch[4]
    for _ in range(5):  # whatever pooled engine connection the next request lands on
        assert request(ch, "USE system")[0] == 200
        assert request(ch, "SELECT currentDatabase()", params={"database": database})[2] == f"{database}\n".encode()
        assert request(ch, "SELECT currentDatabase()")[2] in (b"default\n", f"{database}\n".encode())


def test_insert_detection(ch, client, table):
    status, _, body = request(ch, f"INSERT INTO {table} SELECT number, 'FORMAT CSV' FROM numbers(3)")
    assert status == 200, body
    status, _, body = request(ch, f'INSERT INTO TABLE {table} ("id", `name`) FORMAT CSV\n10,"x FORMAT y"\n')
    assert status == 200, body
    assert request(ch, "SELECT 'a FORMAT CSV'")[2] == b"a FORMAT CSV\n"
    assert client.query(f"SELECT count(), countIf(name = 'x FORMAT y') FROM {table}").result_rows == [(4, 1)]


def test_escaped_backticks_in_table_names(ch, client):
    client.command("CREATE TABLE `srv_we``ird` (`my key` UInt8) ENGINE = Memory")
    try:
        status, _, body = request(ch, 'INSERT INTO `srv_we``ird` ("my key") FORMAT TSV\n7\n')
        assert status == 200, body
        assert client.query("SELECT * FROM `srv_we``ird`").result_rows == [(7,)]
    finally:
        client.command("DROP TABLE `srv_we``ird`")


# -- 2. faithful to the HTTP interface ------------------------------------------------------------------
def test_client_protocol_version_is_accepted(ch):
    assert request(ch, "SELECT 1", params={"client_protocol_version": "54470"})[0] == 200


def test_sessions_are_isolated(ch):
    s1, s2 = uuid.uuid4().hex, uuid.uuid4().hex
    setting = "SELECT value FROM system.settings WHERE name = 'count_distinct_implementation'"
    assert request(ch, "SET count_distinct_implementation = 'uniq'", params={"session_id": s1})[0] == 200
    assert request(ch, setting, params={"session_id": s1})[2] == b"uniq\n"
    assert request(ch, setting, params={"session_id": s2})[2] == b"uniqExact\n"
    for _ in range(5):
        assert request(ch, "SET count_distinct_implementation = 'uniq'")[0] == 200  # no session: this query only
        assert request(ch, setting)[2] == b"uniqExact\n"
    assert request(ch, "USE system", params={"session_id": s1})[0] == 200  # a session keeps its USE …
    assert request(ch, "SELECT currentDatabase()", params={"session_id": s1, "database": None})[2] == b"system\n"
    assert request(ch, "SELECT currentDatabase()", params={"session_id": s2, "database": None})[2] != b"system\n"
    assert request(ch, "CREATE TEMPORARY TABLE srv_tmp (x UInt8)", params={"session_id": s1})[0] == 200
    assert request(ch, "SELECT count() FROM srv_tmp", params={"session_id": s1})[2] == b"0\n"
    status, headers, _ = request(ch, "SELECT count() FROM srv_tmp", params={"session_id": s2})
    assert status == 404 and code(headers) == 60
    status, headers, _ = request(ch, "SELECT 1", params={"session_id": uuid.uuid4().hex, "session_check": "1"})
    assert code(headers) == 372


def test_concurrent_use_of_one_session_is_locked(ch):
    sid = uuid.uuid4().hex
    qid, marker = f"srv-lock-{uuid.uuid4().hex}", uuid.uuid4().hex[:12]
    slow = threading.Thread(target=request, args=(ch, slow_sql(marker)), kwargs={"params": {"session_id": sid, "query_id": qid}})
    slow.start()
    try:
        wait_until(lambda: _engine_is_running(ch, marker), what="the session's slow query to run in the engine")
        _, headers, _ = request(ch, "SELECT 1", params={"session_id": sid})
        assert code(headers) == 373
    finally:
        request(ch, f"KILL QUERY WHERE query_id = '{qid}' SYNC")
        slow.join(30)
    assert not slow.is_alive()


def test_external_data_and_multipart_query(ch):
    boundary = "pulse-boundary"
    parts = [
        ("query", None, b"SELECT sum(x), count() FROM ext"),
        ("ext_structure", None, b"x UInt32"),
        ("ext", "ext.tsv", b"1\n2\n39\n"),
    ]

    def part(name: str, filename: str | None, data: bytes) -> bytes:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        return f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"

    body = b"".join(part(*p) for p in parts) + f"--{boundary}--\r\n".encode()
    status, _, out = request(ch, body=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200 and out == b"42\t3\n", out


@pytest.mark.parametrize(
    ("name", "structure", "fmt"),
    [
        ("ext", "x UInt32); SELECT * FROM file('/etc/passwd', 'LineAsString') --", "TabSeparated"),
        ("ext", "x UInt32) ENGINE = File(TSV, '/tmp/pulse-ext-probe') --", "TabSeparated"),
        ("ext", "x UInt32", "TSV; SELECT 1"),
    ],
)
def test_external_data_cannot_smuggle_statements(ch, name, structure, fmt):
    boundary = "pulse-boundary"
    parts = [
        ("query", None, f"SELECT count() FROM {name}".encode()),
        (f"{name}_structure", None, structure.encode()),
        (f"{name}_format", None, fmt.encode()),
        (name, "ext.tsv", b"1\n"),
    ]

    def part(pname: str, filename: str | None, data: bytes) -> bytes:
        disposition = f'form-data; name="{pname}"' + (f'; filename="{filename}"' if filename else "")
        return f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"

    body = b"".join(part(*p) for p in parts) + f"--{boundary}--\r\n".encode()
    status, headers, out = request(ch, body=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status >= 400 and code(headers) in (62, 73, 497), out
    assert not Path("/tmp/pulse-ext-probe").exists()


def test_query_parameters_including_dollar_names(ch):
    status, _, body = request(ch, "SELECT {$a:UInt8} + {b:UInt8}", params={"param_$a": "40", "param_b": "2"})
    assert status == 200 and body == b"42\n", body


def _request_finished(ch, stack_home, query_id: str) -> bool:
    """The server has answered (or given up on) the request with this query id: its access-log line
    (the local service) or its query_log row (a real server)."""
    if not os.environ.get("PULSE_CH_COMPAT_URL"):
        return f"query_id={query_id}\n" in (stack_home.logs_dir / "clickhouse.log").read_text()
    request(ch, "SYSTEM FLUSH LOGS")
    return request(ch, f"SELECT count() FROM system.query_log WHERE query_id = '{query_id}'")[2] != b"0\n"


def test_aborted_lz4_insert_keeps_the_server_up(ch, client, table, stack_home):
    _, _, user, password, _ = ch
    qid = f"srv-abort-{uuid.uuid4().hex}"
    packed = lz4.frame.compress(b"".join(f"{i}\tx\n".encode() for i in range(100000)))
    head = (
        (
            f"POST /?query_id={qid}&query=INSERT%20INTO%20{table}%20FORMAT%20TSV HTTP/1.1\r\nHost: x\r\nContent-Encoding: lz4\r\n"
            f"Content-Length: {len(packed)}\r\n"
        ).encode()
        + _auth(user, password)
        + b"\r\n"
    )
    host, port, *_ = ch
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(head + packed[: len(packed) // 3])  # and hang up mid-body
    wait_until(lambda: _request_finished(ch, stack_home, qid), what="the server to finish with the aborted insert")
    assert client.query(f"SELECT count() FROM {table}").result_rows == [(0,)]
    status, _, body = request(ch, f"INSERT INTO {table} FORMAT TSV\n1\tok\n")
    assert status == 200, body


def test_error_after_rows_is_an_error_not_partial_data(ch):
    sql = "SELECT number, throwIf(number = 150000) FROM numbers(300000) SETTINGS max_block_size = 1000"
    status, headers, body = request(ch, sql, params={"wait_end_of_query": "1"})
    assert status == 500 and code(headers) == 395 and body.startswith(b"Code: 395")


def test_headers_for_statements_without_a_result(ch, table):
    status, headers, _ = request(ch, f"INSERT INTO {table} FORMAT TSV\n1\ta\n2\tb\n")
    assert status == 200 and "x-clickhouse-format" not in headers
    assert '"written_rows": "2"' in headers["x-clickhouse-summary"].replace('":"', '": "')
    for sql in (f"ALTER TABLE {table} DELETE WHERE id = 1", "SET max_threads = 1"):
        status, headers, _ = request(ch, sql)
        assert status == 200 and "x-clickhouse-format" not in headers, sql
    status, headers, _ = request(ch, "SELECT 1 FORMAT JSONEachRow")
    assert headers["x-clickhouse-format"] == "JSONEachRow"
    qid = f"srv-{uuid.uuid4().hex}"
    assert request(ch, "SELECT 1", params={"query_id": qid})[1]["x-clickhouse-query-id"] == qid


def test_max_execution_time_is_honoured(ch):
    t0 = time.monotonic()
    _, headers, _ = request(ch, SLOW_SQL, params={"max_execution_time": "1"})
    assert code(headers) == 159 and time.monotonic() - t0 < 10


def test_kill_query_by_query_id(ch):
    qid, marker = f"srv-kill-{uuid.uuid4().hex}", uuid.uuid4().hex[:12]
    got: dict = {}
    t = threading.Thread(target=lambda: got.update(r=request(ch, slow_sql(marker), params={"query_id": qid})))
    t.start()
    wait_until(lambda: _engine_is_running(ch, marker), what="the slow query to run in the engine")
    _, headers, _ = request(ch, SLOW_SQL, params={"query_id": qid})  # the same id twice at once
    assert code(headers) == 216
    assert request(ch, f"KILL QUERY WHERE query_id = '{qid}' SYNC")[0] == 200
    t.join(30)
    assert not t.is_alive() and code(got["r"][1]) == 394


def _engine_is_running(ch, needle: str) -> bool:
    sql = f"SELECT count() FROM system.processes WHERE query LIKE '%{needle}%' AND query NOT LIKE '%system.processes%'"
    return request(ch, sql)[2] != b"0\n"


def test_abandoned_query_is_cancelled(ch):
    _, _, user, password, _ = ch
    marker = uuid.uuid4().hex[:12]
    sql = slow_sql(marker).encode()
    head = f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {len(sql)}\r\n".encode() + _auth(user, password) + b"\r\n"
    host, port, *_ = ch
    sock = socket.create_connection((host, port), timeout=10)
    sock.sendall(head + sql)
    wait_until(lambda: _engine_is_running(ch, marker), what="the query to run in the engine")
    sock.close()  # a client timing out
    wait_until(lambda: not _engine_is_running(ch, marker), what="the engine to cancel the abandoned query", timeout=5)


# -- 3. concurrency ---------------------------------------------------------------------------------
def test_a_slow_query_does_not_block_others(ch, client, table):
    qid, marker = f"srv-slow-{uuid.uuid4().hex}", uuid.uuid4().hex[:12]
    slow = threading.Thread(target=request, args=(ch, slow_sql(marker)), kwargs={"params": {"query_id": qid}})
    slow.start()
    try:
        wait_until(lambda: _engine_is_running(ch, marker), what="the slow query to run in the engine")
        t0 = time.monotonic()
        for i in range(20):
            client.query("SELECT count() FROM system.one")
            client.insert(table, [[i, "during"]], column_names=["id", "name"])
        assert time.monotonic() - t0 < 5  # 40 requests while the slow one runs (one lock: > minutes)
        assert client.query(f"SELECT count() FROM {table}").result_rows == [(20,)]
    finally:
        request(ch, f"KILL QUERY WHERE query_id = '{qid}' SYNC")
        slow.join(30)


# -- 4. logins and the log ----------------------------------------------------------------------------
def test_failed_logins_are_rate_limited(ch):  # the budget is per (address, user): a fresh user name each run
    name = f"probe_{uuid.uuid4().hex[:6]}"
    statuses = [request(ch, "SELECT 1", auth=(name, f"guess{i}"))[0] for i in range(14)]
    assert statuses[0] == 401 and statuses[-1] == 429, statuses
    assert request(ch, "SELECT 1")[0] == 200  # other users are not locked out


@LOCAL_ONLY
def test_log_has_no_sql_or_secrets(ch, stack_home):
    """A query with a secret-looking literal, by the admin with the password, and a failed login are
    logged by id only: this test makes its own requests, so it proves something whatever ran before."""
    qid, marker = f"srv-log-{uuid.uuid4().hex}", f"pulse_marker_{uuid.uuid4().hex}"
    assert request(ch, f"SELECT sipHash64('{marker}')", params={"query_id": qid})[0] == 200
    assert request(ch, "SELECT 1", auth=(f"probe_{uuid.uuid4().hex[:6]}", marker))[0] == 401
    log_file = stack_home.logs_dir / "clickhouse.log"
    wait_until(lambda: f"query_id={qid}" in log_file.read_text(), what="the query's access-log line")
    log = log_file.read_text()
    assert marker not in log and "sipHash64" not in log and stack_home.clickhouse.password not in log
