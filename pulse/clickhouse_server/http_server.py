"""The ClickHouse engine (chDB) behind ClickHouse's own HTTP protocol.

No modern ClickHouse server binary is installable from PyPI/apt here, but the ClickHouse engine
is (chDB). This process owns one chDB data directory and answers the ClickHouse HTTP interface, so
unmodified clients (clickhouse-connect, its SQLAlchemy dialect, dbt-clickhouse, Superset) work
against it as against a server. Every query runs in the ClickHouse engine and results are the
engine's own bytes in the requested format.

The parts: ``request`` (parameters, credentials, body, external data), ``auth`` (users, roles,
failed-login brake), ``policy`` (what a role may run, on the engine's parse), ``engine``
(connections, sessions, running queries) and, here, the handler that ties them together and
encodes the response. ``serve`` also creates the named collection that lets dbt's PostgreSQL
database engine reach Postgres with server-side credentials.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pulse.clickhouse_server import sql as sqlmod
from pulse.clickhouse_server.auth import User, Users
from pulse.clickhouse_server.engine import Engine
from pulse.clickhouse_server.errors import ClickHouseError
from pulse.clickhouse_server.policy import Policy, Role
from pulse.clickhouse_server.request import (
    TRANSPORT_PARAMS,
    ExternalTable,
    credentials,
    decode_body,
    encode_body,
    form,
    query_params,
    read_body,
)
from pulse.common.quoting import ident, literal

OUTPUT_KINDS = {"SELECT", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "CHECK"}
CONTENT_TYPES = {
    "JSON": "application/json; charset=UTF-8",
    "JSONCompact": "application/json; charset=UTF-8",
    "JSONEachRow": "application/x-ndjson; charset=UTF-8",
    "CSV": "text/csv; charset=UTF-8",
    "CSVWithNames": "text/csv; charset=UTF-8",
    "TabSeparated": "text/tab-separated-values; charset=UTF-8",
    "TSV": "text/tab-separated-values; charset=UTF-8",
}
DISPLAY_NAME = "pulse-chdb"


@dataclass
class Outcome:
    payload: bytes
    format: str | None  # None: the statement has no result set (DDL, SET, INSERT …)
    summary: dict[str, str]


class Server(ThreadingHTTPServer):
    daemon_threads = True
    engine: Engine
    users: Users
    policy: Policy
    max_body: int


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients pool connections
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server_version = "pulse-chdb-http"
    server: Server

    def log_message(self, fmt: str, *args) -> None:
        pass  # one line per request is written by _log, without the URL (it may carry SQL)

    def _log(self, status: int, size: int, user: str, query_id: str, t0: float) -> None:
        path = urlsplit(self.path).path
        sys.stderr.write(
            f"{time.strftime('%H:%M:%S')} {self.client_address[0]} {self.command} {path} {status} {size}B "
            f"{(time.perf_counter() - t0) * 1000:.1f}ms user={user} query_id={query_id}\n"
        )

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        t0 = time.perf_counter()
        url = urlsplit(self.path)
        params = query_params(url.query)
        if self.command == "GET" and url.path in ("/ping", "/") and not params.get("query"):
            return self._send(200, b"Ok.\n", {"Content-Type": "text/plain; charset=UTF-8"})
        query_id = params.get("query_id") or str(uuid.uuid4())
        user_name = "-"
        try:
            if url.path not in ("/", "/query"):
                raise ClickHouseError(36, f"There is no handle {url.path}", http_status=404)
            # credentials first: nobody gets the server to read (or decompress) a body without them
            user_name, password = credentials(self.headers, params)
            user = self.server.users.authenticate(self.client_address[0], user_name, password)
            body = read_body(self.rfile, self.headers, self.server.max_body)
        except ClickHouseError as err:
            self.close_connection = True  # the body was not (fully) read: the stream is out of step
            status = self._error(err, query_id)
            return self._log(status, 0, user_name, query_id, t0)
        try:
            outcome = self._execute(user, params, body, query_id)
            status, size = self._result(outcome, params, query_id)
        except ClickHouseError as err:
            status, size = self._error(err, query_id), 0
        except Exception as exc:  # never drop the connection without an answer
            status, size = self._error(ClickHouseError(1001, f"{type(exc).__name__}: {exc}"), query_id), 0
        self._log(status, size, user.name, query_id, t0)

    def _execute(self, user: User, params: dict[str, str], body: bytes, query_id: str) -> Outcome:
        srv, role = self.server, user.role
        body = decode_body(body, self.headers.get("Content-Encoding"))
        external: list[ExternalTable] = []
        if self.command == "POST":
            body, external = form(self.headers.get("Content-Type", ""), body, params)
        text, insert = sqlmod.split_insert(params.get("query", ""), body)
        stmt = sqlmod.parse(insert.statement if insert else text)
        read_only_request = self.command == "GET"
        database = params.get("database")
        if database:
            srv.policy.check_database(database, role)
        query_params_ = {k[len("param_") :]: v for k, v in params.items() if k.startswith("param_")}
        explain = lambda q: srv.engine.explain(q, query_params_)  # noqa: E731
        srv.policy.check(stmt, role, explain, read_only_request)
        # external data becomes temporary tables: their DDL is built from the client's structure, so it
        # goes through the same parser and policy as the client's own statement
        creates = [sqlmod.parse(f"CREATE TEMPORARY TABLE {ident(t.name)} ({t.structure}) ENGINE = Memory") for t in external]
        for create in creates:
            srv.policy.check(create, role, explain, read_only_request=False)
        if stmt.kind == "KILL":
            return self._kill(user, stmt)
        settings = {k: v for k, v in params.items() if k not in TRANSPORT_PARAMS and not k.startswith("param_")}
        settings["log_comment"] = query_id  # how the engine's query is found for KILL QUERY / cancellation
        session_id = params.get("session_id") or None
        timeout = min(float(params.get("session_timeout") or 60), 3600.0)
        fmt = stmt.output_format or params.get("default_format") or "TabSeparated"
        readonly = role.readonly or read_only_request
        t0 = time.perf_counter()
        with (
            srv.engine.connection(user.name, readonly, session_id, timeout, params.get("session_check") == "1") as (
                conn,
                in_session,
            ),
            srv.engine.track(query_id, user.name, self.connection) as run,
        ):
            conn.prepare(database or (conn.database if in_session and conn.database else role.default_database), settings)
            try:
                for table, create in zip(external, creates, strict=True):
                    conn.retire = not in_session
                    conn.query(create.sql, "TabSeparated", {})
                    conn.insert(f"INSERT INTO {ident(table.name)}", table.format, table.data)
                if insert is not None:
                    result = conn.insert(insert.head, insert.format, insert.data)
                else:
                    result = conn.query(stmt.sql, fmt, query_params_)
            except ClickHouseError as err:
                if run.killed and err.code == 394:
                    err.args = (f"{err.args[0]} ({run.killed})",)
                raise
            finally:
                if in_session:
                    for table in external:
                        conn.query(f"DROP TEMPORARY TABLE IF EXISTS {ident(table.name)}", "TabSeparated", {})
            if stmt.changes_session:
                if not in_session:
                    conn.retire = True  # session-less: the state lasts this one query, as in ClickHouse
                elif stmt.kind == "USE" and len(stmt.tokens) > 1:
                    conn.database = stmt.tokens[1].name  # the session's current database from now on
        return self._outcome(stmt, result, fmt, t0)

    def _kill(self, user: User, stmt: sqlmod.Statement) -> Outcome:
        target = sqlmod.kill_query_target(stmt)
        if target is None:
            raise ClickHouseError(36, "This server supports KILL QUERY WHERE query_id = '<id>' [SYNC|ASYNC] only")
        run = self.server.engine.running.get(target)
        if run is not None and user.role.readonly and run.user != user.name:
            raise ClickHouseError(497, f"{user.name}: not enough privileges to kill a query of {run.user}")
        found = run is not None and self.server.engine.kill(target, f"killed by {user.name}")
        line = f"finished\t{target}\t{run.user if run else ''}\n".encode() if found else b""
        return Outcome(line, "TabSeparated", {})

    @staticmethod
    def _outcome(stmt: sqlmod.Statement, result: Any, fmt: str, t0: float) -> Outcome:
        payload = result.bytes() if hasattr(result, "bytes") else b""
        read_rows = result.rows_read() if hasattr(result, "rows_read") else 0
        written_rows = result.rows_written if isinstance(getattr(result, "rows_written", None), int) else 0
        written_bytes = result.bytes_written if isinstance(getattr(result, "bytes_written", None), int) else 0
        summary = {
            "read_rows": str(read_rows if stmt.kind in OUTPUT_KINDS else 0),
            "read_bytes": str(result.bytes_read() if hasattr(result, "bytes_read") and stmt.kind in OUTPUT_KINDS else 0),
            "written_rows": str(written_rows),
            "written_bytes": str(written_bytes),
            "total_rows_to_read": "0",
            "result_rows": str(read_rows if stmt.kind in OUTPUT_KINDS else 0),
            "result_bytes": str(len(payload)),
            "elapsed_ns": str(int((time.perf_counter() - t0) * 1e9)),
        }
        return Outcome(payload, fmt if stmt.kind in OUTPUT_KINDS else None, summary)

    def _result(self, outcome: Outcome, params: dict[str, str], query_id: str) -> tuple[int, int]:
        headers = {
            "Content-Type": CONTENT_TYPES.get(outcome.format, "application/octet-stream")
            if outcome.format
            else "text/plain; charset=UTF-8",
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": "UTC",
            "X-ClickHouse-Server-Display-Name": DISPLAY_NAME,
        }
        if outcome.format:
            headers["X-ClickHouse-Format"] = outcome.format
        if outcome.summary:
            headers["X-ClickHouse-Summary"] = json.dumps(outcome.summary)
        if params.get("session_id"):
            headers["X-ClickHouse-Session-Id"] = params["session_id"]
        payload = outcome.payload
        if params.get("enable_http_compression") == "1":
            payload, encoding = encode_body(payload, self.headers.get("Accept-Encoding"))
            if encoding:
                headers["Content-Encoding"] = encoding
        self._send(200, payload, headers)
        return 200, len(payload)

    def _error(self, err: ClickHouseError, query_id: str) -> int:
        self._send(
            err.http_status,
            (str(err) + "\n").encode(),
            {
                "Content-Type": "text/plain; charset=UTF-8",
                "X-ClickHouse-Exception-Code": str(err.code),
                "X-ClickHouse-Query-Id": query_id,
                "X-ClickHouse-Server-Display-Name": DISPLAY_NAME,
            },
        )
        return err.http_status

    def _send(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
        try:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away; nothing to tell it


def _client_gone(sock: socket.socket) -> bool:
    """The client closed its side (what a timed-out or aborted request looks like)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


def watch(engine: Engine, stop: threading.Event, interval: float = 0.25) -> None:
    """Cancel queries whose client hung up, and expire idle sessions."""
    while not stop.wait(interval):
        for run in list(engine.running.values()):
            if run.sock is not None and not run.killed and _client_gone(run.sock):
                try:
                    engine.kill(run.query_id, "the client closed the connection")
                except ClickHouseError as err:
                    sys.stderr.write(f"cancel {run.query_id}: {err}\n")
        engine.expire_sessions()


@dataclass
class ServerConfig:
    """What ``pulse.services.clickhouse`` writes (0600) for the server: users, roles, Postgres collection."""

    users: list[dict[str, Any]]  # {name, password, role: writer|reader, default_database, databases: regex (readers)}
    postgres: dict[str, Any] | None  # {collection, attach_as, host, port, database, user, password, schema}
    max_body_bytes: int = 1 << 30
    max_concurrent_queries: int = 16

    @classmethod
    def load(cls, path: Path) -> ServerConfig:
        return cls(**json.loads(path.read_text()))


def bootstrap(engine: Engine, cfg: ServerConfig) -> Policy:
    """Server-side state clients rely on: the Postgres named collection, and the policy's inputs."""
    table_functions = {name.lower() for name in engine.admin("SELECT name FROM system.table_functions").decode().split()}
    pg = cfg.postgres
    if pg:
        engine.admin(f"DROP NAMED COLLECTION IF EXISTS {ident(pg['collection'])}")
        keys = ("host", "port", "database", "user", "password", "schema")
        pairs = ", ".join(f"{k} = {literal(str(pg[k]))}" for k in keys if pg.get(k) is not None)
        engine.admin(f"CREATE NAMED COLLECTION {ident(pg['collection'])} AS {pairs}")
    for user in cfg.users:  # a user's default database exists from the start, as on a configured server
        engine.admin(f"CREATE DATABASE IF NOT EXISTS {ident(user.get('default_database', 'default'))}")
    protected = {pg["attach_as"]} if pg else set()  # where dbt attaches Postgres: never for readers
    return Policy(table_functions, pg["collection"] if pg else None, protected)


def serve(data_dir: Path, host: str, port: int, cfg: ServerConfig) -> None:
    engine = Engine(data_dir, max_concurrent=cfg.max_concurrent_queries)
    policy = bootstrap(engine, cfg)
    users = Users(
        [
            User(
                u["name"],
                u["password"],
                Role(
                    u["role"],
                    u["role"] == "reader",
                    u.get("default_database", "default"),
                    re.compile(u["databases"]) if u.get("databases") else None,
                ),
            )
            for u in cfg.users
        ]
    )
    server = Server((host, port), Handler)
    server.engine, server.users, server.policy, server.max_body = engine, users, policy, cfg.max_body_bytes
    stop_watch = threading.Event()
    threading.Thread(target=watch, args=(engine, stop_watch), daemon=True, name="watch").start()

    def stop(*_args) -> None:  # finish the requests in flight, then close the engine cleanly
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    roles = ", ".join(f"{u['name']} ({u['role']})" for u in cfg.users)
    print(f"pulse-chdb-http: ClickHouse engine over HTTP on {host}:{port}, data in {data_dir}, users {roles}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        stop_watch.set()
        server.server_close()
        engine.close()
        print("pulse-chdb-http: stopped", flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Serve a chDB data directory over ClickHouse's HTTP interface.")
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="HTTP port (the service manager passes PULSE_CH_PORT)")
    p.add_argument("--config", type=Path, required=True, help="JSON (0600): users and roles, Postgres collection, limits")
    args = p.parse_args(argv)
    os.umask(0o077)  # the engine's files (named collections included) readable by this user only
    tmp = args.data_dir / "http_tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    tempfile.tempdir = str(tmp)
    serve(args.data_dir, args.host, args.port, ServerConfig.load(args.config))


if __name__ == "__main__":
    main()
