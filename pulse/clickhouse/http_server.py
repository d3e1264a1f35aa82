"""The ClickHouse engine (chDB) behind ClickHouse's own HTTP protocol.

No modern ClickHouse server binary is installable from PyPI/apt here, but the ClickHouse engine
is (chDB). This process owns one chDB data directory and answers the ClickHouse HTTP interface,
so unmodified clients (clickhouse-connect, its SQLAlchemy dialect, dbt-clickhouse) work against
it as against a server. It is not a reimplementation: every query runs in the ClickHouse engine,
and results are the engine's own bytes in the requested format.

Supported: ``/ping``; ``/`` with the query in the ``query`` parameter and/or the body;
``INSERT … FORMAT <fmt>`` with the data in the body; request bodies compressed with
gzip/deflate/zstd/lz4 (``Content-Encoding``); compressed responses when
``enable_http_compression=1`` and ``Accept-Encoding`` allow; ``database``, ``default_format``,
``query_id``, ``session_id`` and any ClickHouse setting as URL parameters (settings apply to that
request only); user/password from ``X-ClickHouse-User``/``X-ClickHouse-Key``, Basic auth or URL.
Errors come back as ClickHouse sends them: HTTP status by error code, ``Code: N. DB::Exception: …``
body and the ``X-ClickHouse-Exception-Code`` header.

Concurrency: the engine is driven through one session, so queries run one at a time (a lock);
many clients can connect concurrently and are served in arrival order. Sessions (``session_id``)
share that one engine session: a ``SET`` statement is visible to every client.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hmac
import json
import re
import signal
import sys
import tempfile
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

# URL parameters that are part of the protocol, not ClickHouse settings
TRANSPORT_PARAMS = {
    "query",
    "database",
    "default_format",
    "query_id",
    "session_id",
    "session_timeout",
    "session_check",
    "user",
    "password",
    "compress",
    "decompress",
    "enable_http_compression",
    "wait_end_of_query",
    "buffer_size",
    "quota_key",
    "role",
    "http_headers_progress_interval_ms",
    "send_progress_in_http_headers",
    "add_http_cors_header",
}
# ClickHouse's mapping of error codes to HTTP statuses (the ones clients act upon)
HTTP_STATUS = {
    516: 401,
    192: 401,
    194: 401,  # AUTHENTICATION_FAILED, UNKNOWN_USER, REQUIRED_PASSWORD
    164: 403,
    497: 403,  # READONLY, ACCESS_DENIED
    60: 404,
    81: 404,
    36: 400,  # UNKNOWN_TABLE, UNKNOWN_DATABASE, BAD_ARGUMENTS
    62: 400,
    47: 400,
    46: 400,
    115: 400,
    27: 400,
    6: 400,
    117: 400,  # syntax, unknown identifier/function/setting, parse
    57: 500,  # TABLE_ALREADY_EXISTS
}
CODE_RE = re.compile(r"Code: (\d+)\.")
INSERT_RE = re.compile(
    r"^\s*INSERT\s+INTO\s+(?P<table>(?:`[^`]+`|[\w.]+)(?:\.(?:`[^`]+`|\w+))?)\s*(?:\((?P<cols>[^)]*)\))?\s*"
    r"(?:SETTINGS\s+(?P<settings>.*?)\s+)?FORMAT\s+(?P<fmt>\w+)\s*$",
    re.IGNORECASE | re.DOTALL,
)
FORMAT_RE = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
CONTENT_TYPES = {
    "JSON": "application/json; charset=UTF-8",
    "JSONCompact": "application/json; charset=UTF-8",
    "JSONEachRow": "application/x-ndjson; charset=UTF-8",
    "CSV": "text/csv; charset=UTF-8",
    "CSVWithNames": "text/csv; charset=UTF-8",
    "TabSeparated": "text/tab-separated-values; charset=UTF-8",
}


class ClickHouseError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code

    @classmethod
    def from_engine(cls, exc: Exception) -> ClickHouseError:
        text = str(exc).strip()
        m = CODE_RE.search(text)
        return cls(int(m.group(1)) if m else 1000, text if text.startswith("Code:") else f"Code: 1000. DB::Exception: {text}")


INSERT_HEAD_RE = re.compile(rb"^\s*INSERT\s+INTO\s.*?\bFORMAT\s+\w+", re.IGNORECASE | re.DOTALL)


def split_insert(url_query: str, body: bytes) -> tuple[str, bytes | None]:
    """(sql, insert data or None). The statement may sit in the URL with the rows in the body, or
    start the body itself ("INSERT … FORMAT Native\n" then rows), as ClickHouse allows both."""
    whole = (url_query.encode() + b"\n" + body) if url_query and body else (url_query.encode() or body)
    m = INSERT_HEAD_RE.match(whole[:65_536])
    if m:
        rest = whole[m.end() :]
        if rest[:1] in (b" ", b"\n"):  # one separator between the statement and the data
            rest = rest[1:]
        elif rest[:2] == b"\r\n":
            rest = rest[2:]
        return m.group(0).decode(), rest
    return whole.decode(), None


def decode_body(body: bytes, encoding: str | None) -> bytes:
    encoding = (encoding or "").strip().lower()
    if not encoding or encoding == "identity" or not body:
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    if encoding == "lz4":
        import lz4.frame

        return lz4.frame.decompress(body)
    raise ClickHouseError(36, f"Code: 36. DB::Exception: Unknown Content-Encoding '{encoding}'. (BAD_ARGUMENTS)")


def encode_body(body: bytes, accept: str | None) -> tuple[bytes, str | None]:
    offered = [a.split(";")[0].strip().lower() for a in (accept or "").split(",")]
    for enc in offered:  # the client's order of preference
        if enc == "gzip":
            return gzip.compress(body, compresslevel=3), "gzip"
        if enc == "deflate":
            return zlib.compress(body, 3), "deflate"
        if enc == "zstd":
            import zstandard

            return zstandard.ZstdCompressor(level=3).compress(body), "zstd"
        if enc == "lz4":
            import lz4.frame

            return lz4.frame.compress(body), "lz4"
    return body, None


class Engine:
    """One chDB session over a data directory; every query goes through the lock."""

    def __init__(self, data_dir: Path) -> None:
        from chdb import session

        self.data_dir = data_dir
        self.tmp_dir = data_dir / "http_tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.session = session.Session(str(data_dir / "engine"))
        self.lock = threading.Lock()
        self.database: str | None = None  # what the session currently uses
        self.settings: dict[str, str] = {}  # URL settings currently applied to the session

    def _run(self, sql: str, fmt: str):
        try:
            return self.session.query(sql, fmt)
        except Exception as exc:  # chDB raises its own error type carrying ClickHouse's text
            raise ClickHouseError.from_engine(exc) from exc

    def execute(self, sql: str, fmt: str, database: str | None, settings: dict[str, str], data: bytes | None) -> Any:
        """Run one request's statement; returns chDB's result (bytes in ``fmt`` plus statistics)."""
        with self.lock:
            self._session_state(database or "default", settings)
            if data is not None:
                return self._insert(sql, data)
            return self._run(sql, fmt)

    def _session_state(self, database: str, settings: dict[str, str]) -> None:
        """Bring the engine session to this request's database and URL settings, issuing only the
        changes: clients send the same settings on every request, so this is usually free."""
        if database != self.database:
            self._run(f"USE {_ident(database)}", "TabSeparated")
            self.database = database
        for key in [k for k in self.settings if k not in settings]:
            self._run(f"SET {key} = DEFAULT", "TabSeparated")
            del self.settings[key]
        for key, value in settings.items():
            if self.settings.get(key) != value:
                self._run(f"SET {_setting_name(key)} = {_literal(value)}", "TabSeparated")
                self.settings[key] = value

    def _insert(self, sql: str, data: bytes):
        m = INSERT_RE.match(sql)
        if not m:
            raise ClickHouseError(
                62, "Code: 62. DB::Exception: expected INSERT INTO <table> [(cols)] FORMAT <fmt>. (SYNTAX_ERROR)"
            )
        table, fmt = m.group("table"), m.group("fmt")
        cols = [c.strip() for c in (m.group("cols") or "").split(",") if c.strip()]
        structure = self._structure(table, cols)
        path = self.tmp_dir / f"insert-{uuid.uuid4().hex}.{fmt}"
        path.write_bytes(data)
        try:
            settings = f" SETTINGS {m.group('settings')}" if m.group("settings") else ""
            target = f"{table} ({', '.join(cols)})" if cols else table
            source = f"file({_literal(str(path))}, {_literal(fmt)}, {_literal(structure)})"
            return self._run(f"INSERT INTO {target} SELECT * FROM {source}{settings}", "TabSeparated")
        finally:
            path.unlink(missing_ok=True)

    def _structure(self, table: str, cols: list[str]) -> str:
        db, _, name = table.replace("`", "").rpartition(".")
        where = f"database = {_literal(db)}" if db else "database = currentDatabase()"
        rows = self._run(
            f"SELECT name, type FROM system.columns WHERE {where} AND table = {_literal(name)} ORDER BY position", "JSONCompact"
        )
        columns = json.loads(rows.bytes() or b'{"data": []}')["data"]
        if not columns:
            raise ClickHouseError(60, f"Code: 60. DB::Exception: Table {table} does not exist. (UNKNOWN_TABLE)")
        types = dict(columns)
        wanted = [c.strip("`") for c in cols] or [c for c, _ in columns]
        return ", ".join(f"`{c}` {types[c]}" for c in wanted)


def _ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _setting_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ClickHouseError(115, f"Code: 115. DB::Exception: Unknown setting '{name}'. (UNKNOWN_SETTING)")
    return name


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients pool connections
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server_version = "pulse-chdb-http"
    engine: Engine
    user: str
    password: str

    def log_message(self, fmt: str, *args) -> None:  # one line per request in the service log
        sys.stderr.write(f"{time.strftime('%H:%M:%S')} {self.address_string()} {fmt % args}\n")

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():  # clients stream inserts
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()  # CRLF after each chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _credentials(self, params: dict[str, str]) -> tuple[str, str]:
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:  # undecodable header: no credentials
                return "", ""
            return user, password
        return (
            self.headers.get("X-ClickHouse-User") or params.get("user") or "default",
            self.headers.get("X-ClickHouse-Key") or params.get("password") or "",
        )

    def _handle(self) -> None:
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        body = self._read_body()
        query_id = params.get("query_id") or str(uuid.uuid4())
        if self.command == "GET" and url.path in ("/ping", "/") and not params.get("query"):
            return self._send(200, b"Ok.\n", {"Content-Type": "text/plain; charset=UTF-8"})
        try:
            user, password = self._credentials(params)
            if not (
                hmac.compare_digest(user.encode(), self.user.encode())
                and hmac.compare_digest(password.encode(), self.password.encode())
            ):
                raise ClickHouseError(
                    516,
                    f"Code: 516. DB::Exception: {user}: Authentication failed: password is "
                    "incorrect, or there is no user with such name. (AUTHENTICATION_FAILED)",
                )
            body = decode_body(body, self.headers.get("Content-Encoding"))
            sql, data = split_insert(params.get("query", ""), body)
            if not sql.strip():
                raise ClickHouseError(62, "Code: 62. DB::Exception: Empty query. (SYNTAX_ERROR)")
            fmt = params.get("default_format", "TabSeparated")
            named = FORMAT_RE.search(sql) if data is None else None
            out_fmt = named.group(1) if named else fmt
            settings = {k: v for k, v in params.items() if k not in TRANSPORT_PARAMS}
            t0 = time.perf_counter()
            result = self.engine.execute(sql, fmt, params.get("database"), settings, data)
            payload = result.bytes() if result is not None else b""
            summary = {
                "read_rows": str(result.rows_read()),
                "read_bytes": str(result.bytes_read()),
                "written_rows": str(getattr(result, "rows_written", lambda: 0)()),
                "written_bytes": str(getattr(result, "bytes_written", lambda: 0)()),
                "total_rows_to_read": "0",
                "result_rows": str(result.rows_read()),
                "result_bytes": str(len(payload)),
                "elapsed_ns": str(int((time.perf_counter() - t0) * 1e9)),
            }
            headers = {
                "Content-Type": CONTENT_TYPES.get(out_fmt, "application/octet-stream"),
                "X-ClickHouse-Query-Id": query_id,
                "X-ClickHouse-Format": out_fmt,
                "X-ClickHouse-Timezone": "UTC",
                "X-ClickHouse-Summary": json.dumps(summary),
                "X-ClickHouse-Server-Display-Name": "pulse-chdb",
            }
            if params.get("session_id"):
                headers["X-ClickHouse-Session-Id"] = params["session_id"]
            if params.get("enable_http_compression") == "1":
                payload, encoding = encode_body(payload, self.headers.get("Accept-Encoding"))
                if encoding:
                    headers["Content-Encoding"] = encoding
            self._send(200, payload, headers)
        except ClickHouseError as err:
            self._send(
                HTTP_STATUS.get(err.code, 500),
                (str(err) + "\n").encode(),
                {
                    "Content-Type": "text/plain; charset=UTF-8",
                    "X-ClickHouse-Exception-Code": str(err.code),
                    "X-ClickHouse-Query-Id": query_id,
                    "X-ClickHouse-Server-Display-Name": "pulse-chdb",
                },
            )

    def _send(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def serve(data_dir: Path, host: str, port: int, user: str, password: str) -> None:
    engine = Engine(data_dir)
    handler = type("BoundHandler", (Handler,), {"engine": engine, "user": user, "password": password})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True

    def stop(*_args) -> None:  # finish the request in flight, then close the engine cleanly
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"pulse-chdb-http: ClickHouse engine over HTTP on {host}:{port}, data in {data_dir}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        with engine.lock:
            engine.session.close()
        print("pulse-chdb-http: stopped", flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Serve a chDB data directory over ClickHouse's HTTP interface.")
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=18123)
    p.add_argument("--user", default="default")
    p.add_argument("--password-file", type=Path, help="file holding the password (kept off the command line)")
    args = p.parse_args(argv)
    password = args.password_file.read_text().strip() if args.password_file else ""
    tempfile.tempdir = str(args.data_dir / "http_tmp")
    serve(args.data_dir, args.host, args.port, args.user, password)


if __name__ == "__main__":
    main()
