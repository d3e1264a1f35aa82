"""The chDB engine: connections, sessions, running queries.

One process hosts one embedded engine over one data directory. chDB connections to it are
independent (own current database, settings, temporary tables) and run queries in parallel, so:

- requests without ``session_id`` take a connection from a pool; a statement that leaves state
  behind (SET, USE, temporary tables) retires that connection instead of returning it, so nothing
  leaks into another client's request, as in ClickHouse where a session-less SET lasts one query;
- a ``session_id`` gets its own connection for its lifetime (``session_timeout``, default 60 s);
  using it from two requests at once is ``SESSION_IS_LOCKED``, as in ClickHouse;
- read-only users (and GET requests) run on connections opened with ``readonly=2``, which the
  engine enforces and which cannot be switched off from inside;
- every query runs with ``log_comment`` = its ``query_id``: that is how ``KILL QUERY WHERE
  query_id = …`` and the cancellation of abandoned requests find it in the engine.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulse.clickhouse_server.errors import ClickHouseError
from pulse.clickhouse_server.sql import setting_name
from pulse.common.quoting import ident, literal

INSERT_SLICE = 1 << 20  # bytes handed to the engine's streaming insert at a time


@dataclass
class Connection:
    """A chDB connection and the state this server applied to it."""

    raw: Any
    readonly: bool
    database: str | None = None
    settings: dict[str, str] = field(default_factory=dict)
    retire: bool = False  # holds state a statement left behind: close it instead of pooling it

    def _run(self, sql: str, fmt: str = "TabSeparated", params: dict[str, str] | None = None) -> Any:
        try:
            return self.raw.query(sql, fmt, params=params)
        except Exception as exc:  # chDB raises its own error type carrying ClickHouse's text
            raise ClickHouseError.from_engine(exc) from None

    def prepare(self, database: str, settings: dict[str, str]) -> None:
        """Bring the connection to this request's database and settings, issuing only the changes."""
        if database != self.database:
            self.database = None  # unknown until USE succeeds
            self._run(f"USE {ident(database)}")
            self.database = database
        for key in [k for k in self.settings if k not in settings]:
            self._run(f"SET {key} = DEFAULT")
            del self.settings[key]
        for key, value in settings.items():
            if self.settings.get(key) != value:
                self.settings.pop(key, None)
                self._run(f"SET {setting_name(key)} = {literal(value)}")
                self.settings[key] = value

    def query(self, sql: str, fmt: str, params: dict[str, str]) -> Any:
        return self._run(sql, fmt, params)

    def insert(self, head: str, fmt: str, data: bytes) -> Any:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", fmt):  # the engine splices it into the statement
            raise ClickHouseError(73, f"Unknown format {fmt!r}")
        try:
            inserter = self.raw.send_insert(head, fmt)
        except Exception as exc:
            raise ClickHouseError.from_engine(exc) from None
        try:
            view = memoryview(data)
            for i in range(0, len(view), INSERT_SLICE):
                inserter.append(bytes(view[i : i + INSERT_SLICE]))
            return inserter.finish()
        except Exception as exc:
            with contextlib.suppress(Exception):
                inserter.cancel()
            raise ClickHouseError.from_engine(exc) from None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.raw.close()


@dataclass
class Session:
    connection: Connection
    user: str
    timeout: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_used: float = field(default_factory=time.monotonic)


@dataclass
class Running:
    """A query in flight: what KILL QUERY and the abandoned-request watcher need."""

    query_id: str
    user: str
    started: float
    sock: Any = None  # the client's socket, polled for a hang-up
    killed: str = ""  # why it was cancelled, once it was


class Engine:
    def __init__(self, data_dir: Path, max_concurrent: int = 16, queue_wait_s: float = 10.0) -> None:
        from chdb import state

        self._connect = state.connect
        self.path = str(data_dir / "engine")
        self._admin = self._open(readonly=False)  # keeps the engine up; server-internal statements
        self._admin_lock = threading.Lock()
        self._pools: dict[bool, list[Connection]] = {False: [], True: []}
        self._pool_lock = threading.Lock()
        self.sessions: dict[tuple[str, str], Session] = {}
        self._sessions_lock = threading.Lock()
        self.running: dict[str, Running] = {}
        self._running_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self.queue_wait_s = queue_wait_s

    def _open(self, readonly: bool) -> Connection:
        return Connection(self._connect(self.path + ("?readonly=2" if readonly else "")), readonly)

    def admin(self, sql: str, fmt: str = "TabSeparated") -> bytes:
        """Server-internal statements (bootstrap, KILL): never reached by client SQL directly."""
        with self._admin_lock:
            return self._admin.query(sql, fmt, {}).bytes()

    def explain(self, sql: str, params: dict[str, str]) -> str:
        """The engine's parse of ``sql`` (``EXPLAIN AST``), on a pooled read-only connection: the
        policy check of every request must not queue behind one lock (a KILL … SYNC can hold the
        admin connection for as long as the query takes to stop)."""
        conn = self._take(readonly=True)
        try:
            return conn.query(f"EXPLAIN AST {sql}", "TabSeparated", params).bytes().decode()
        finally:
            self._give(conn)

    def _take(self, readonly: bool) -> Connection:
        with self._pool_lock:
            pool = self._pools[readonly]
            conn = pool.pop() if pool else None
        return conn or self._open(readonly)

    def _give(self, conn: Connection) -> None:
        if conn.retire:
            conn.close()
        else:
            with self._pool_lock:
                self._pools[conn.readonly].append(conn)

    # -- connections -------------------------------------------------------------------------
    @contextlib.contextmanager
    def connection(
        self, user: str, readonly: bool, session_id: str | None, timeout: float, check: bool
    ) -> Iterator[tuple[Connection, bool]]:
        """A connection for one request: (connection, is it a session's)."""
        if not self._slots.acquire(timeout=self.queue_wait_s):
            raise ClickHouseError(202, f"Too many simultaneous queries (waited {self.queue_wait_s:.0f} s for a free slot)")
        try:
            if session_id:
                with self._session(user, readonly, session_id, timeout, check) as conn:
                    yield conn, True
                return
            conn = self._take(readonly)
            try:
                yield conn, False
            except BaseException:
                conn.retire = True  # a failed statement may have left it anywhere
                raise
            finally:
                self._give(conn)
        finally:
            self._slots.release()

    @contextlib.contextmanager
    def _session(self, user: str, readonly: bool, session_id: str, timeout: float, check: bool) -> Iterator[Connection]:
        key = (user, session_id)
        with self._sessions_lock:
            session = self.sessions.get(key)
            if session is None:
                if check:
                    raise ClickHouseError(372, f"Session {session_id} not found")
                session = Session(self._open(readonly), user, timeout)
                self.sessions[key] = session
        if not session.lock.acquire(blocking=False):
            raise ClickHouseError(373, f"Session {session_id} is locked by a concurrent client")
        try:
            session.timeout = timeout
            yield session.connection
        finally:
            session.last_used = time.monotonic()
            session.lock.release()

    def expire_sessions(self) -> None:
        now = time.monotonic()
        with self._sessions_lock:
            for key, s in list(self.sessions.items()):
                if now - s.last_used > s.timeout and s.lock.acquire(blocking=False):
                    del self.sessions[key]
                    s.connection.close()
                    s.lock.release()

    # -- running queries ---------------------------------------------------------------------
    @contextlib.contextmanager
    def track(self, query_id: str, user: str, sock: Any) -> Iterator[Running]:
        run = Running(query_id, user, time.monotonic(), sock)
        with self._running_lock:
            if query_id in self.running:
                raise ClickHouseError(216, f"Query with id = {query_id} is already running")
            self.running[query_id] = run
        try:
            yield run
        finally:
            with self._running_lock:
                self.running.pop(query_id, None)

    def kill(self, query_id: str, reason: str) -> bool:
        """Cancel a running query (found by its log_comment); True when the engine had it."""
        with self._running_lock:
            run = self.running.get(query_id)
            if run is not None:
                run.killed = reason
        out = self.admin(f"KILL QUERY WHERE Settings['log_comment'] = {literal(query_id)} SYNC FORMAT TabSeparated")
        return bool(out.strip())

    def close(self) -> None:
        with self._sessions_lock:
            for s in self.sessions.values():
                s.connection.close()
            self.sessions.clear()
        with self._pool_lock:
            for pool in self._pools.values():
                for c in pool:
                    c.close()
                pool.clear()
        with self._admin_lock:
            self._admin.close()
