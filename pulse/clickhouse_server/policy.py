"""What each role may run, decided on the engine's own parse of the statement.

chDB runs with the rights of a local user: its table functions and engines read and write host
files (``file``, ``File``), reach the network (``url``, ``s3``, ``remote``, ``mysql``, …) or run
programs (``executable``, ``python``). A server must not hand that to its clients, so every
statement is parsed by the engine (``EXPLAIN AST``) and refused when it names a table function or
engine outside the allow-lists below — allow-lists, so a function added by a later engine version is
refused until someone looks at it. The one legitimate use of PostgreSQL, the dbt sources, goes
through ``ENGINE = PostgreSQL(<named collection>)``: the credentials live in a named collection the
server creates from its own configuration, so no client ever sends or reads them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from pulse.clickhouse_server.errors import ClickHouseError
from pulse.clickhouse_server.sql import Statement

# Table functions that only compute or read what the caller could read anyway
SAFE_TABLE_FUNCTIONS = {
    "numbers", "numbers_mt", "zeros", "zeros_mt", "generate_series", "generateseries", "generaterandom",
    "values", "view", "viewifpermitted", "viewexplain", "null", "format", "input", "loop", "primes",
    "merge", "sqlstandardvalues", "fuzzjson", "fuzzquery",
}  # fmt: skip
# Engines that keep data inside the server (tables, views) or in memory
SAFE_ENGINE_RE = re.compile(
    r"^(\w*MergeTree|Memory|Log|TinyLog|StripeLog|Null|Set|Join|Buffer|Merge|View|MaterializedView|Atomic|Lazy)$",
    re.IGNORECASE,
)
# Statement kinds no HTTP client may run: host paths, server administration, access management
FORBIDDEN_KINDS = {"SYSTEM", "BACKUP", "RESTORE", "ATTACH", "GRANT", "REVOKE", "CHECK_GRANT"}
FORBIDDEN_WORDS = [
    ("INTO", "OUTFILE"),
    ("FROM", "INFILE"),
    ("NAMED", "COLLECTION"),
    ("DICTIONARY",),
    ("CREATE", "USER"),
    ("CREATE", "ROLE"),
    ("ALTER", "USER"),
    ("DROP", "USER"),
    ("CREATE", "QUOTA"),
    ("CREATE", "SETTINGS", "PROFILE"),
    ("CREATE", "ROW", "POLICY"),
]
# No client reads these: they would show the server-side credentials (named collections)
HIDDEN_SYSTEM_TABLES = {"named_collections"}
# Reader role: the system tables clients and BI tools need to introspect, and nothing that shows other users' queries
READER_SYSTEM_TABLES = {
    "one", "numbers", "settings", "databases", "tables", "columns", "functions", "table_functions",
    "data_type_families", "formats", "time_zones", "build_options", "collations", "table_engines",
    "parts", "merge_tree_settings", "keywords",
}  # fmt: skip
_FUNCTION = re.compile(r"^\s*Function (\S+)")
_STORAGE = re.compile(r"^\s*Storage definition")
_TABLE_REF = re.compile(r"^\s*(TableIdentifier|Identifier|UseQuery|ShowTables|TableExpression)\s+(\S+)")


@dataclass
class Role:
    name: str  # "writer" or "reader"
    readonly: bool
    default_database: str = "default"
    databases: re.Pattern | None = None  # reader: the databases it may read (plus allowed system tables)

    def may_read(self, database: str) -> bool:
        if not self.readonly:
            return True
        return database.lower() == "information_schema" or bool(self.databases and self.databases.fullmatch(database))


@dataclass
class Policy:
    table_functions: set[str]  # every table function the engine has (lower-case)
    pg_collection: str | None  # the named collection dbt's PostgreSQL database engine may use
    protected_databases: set[str] = field(default_factory=set)  # PostgreSQL-engine databases: writer only

    def check(self, stmt: Statement, role: Role, explain: Callable[[str], str], read_only_request: bool) -> None:
        """Raise ClickHouseError when ``role`` may not run ``stmt``."""
        if stmt.kind in FORBIDDEN_KINDS:
            raise ClickHouseError(497, f"{stmt.kind} queries are not allowed through the HTTP interface of this server")
        for words in FORBIDDEN_WORDS:
            if stmt.has_words(*words):
                raise ClickHouseError(497, f"{' '.join(words)} is not allowed through the HTTP interface of this server")
        if (role.readonly or read_only_request) and not stmt.is_read:
            why = "the user is read-only" if role.readonly else "a GET request is read-only (use POST)"
            raise ClickHouseError(164, f"Cannot execute query in readonly mode: {why}")
        if stmt.kind in ("SET", "KILL"):
            return  # nothing in them reaches a table function or engine (KILL is mapped by the server)
        self._check_ast(explain(stmt.sql), stmt, role)

    def _check_ast(self, ast: str, stmt: Statement, role: Role) -> None:
        lines = ast.replace("\\'", "'").splitlines()
        in_storage_of = -1  # indentation of the "Storage definition" whose engine is still to come
        for line in lines:
            indent = len(line) - len(line.lstrip())
            if in_storage_of >= 0 and indent <= in_storage_of:
                in_storage_of = -1
            if _STORAGE.match(line):
                in_storage_of = indent
                continue
            m = _FUNCTION.match(line)
            if m:
                name = m.group(1)
                if in_storage_of >= 0 and indent == in_storage_of + 1:
                    in_storage_of = -1  # its first child is the engine; ORDER BY, PARTITION BY … follow
                    self._check_engine(name, stmt, role, lines)
                elif name.lower() in self.table_functions and name.lower() not in SAFE_TABLE_FUNCTIONS:
                    raise ClickHouseError(497, f"Table function {name} is not allowed: it reaches the host or the network")
                elif name.lower() == "file":  # the scalar file() reads host files too
                    raise ClickHouseError(497, "Function file is not allowed: it reads host files")
                elif role.readonly and name.lower() == "merge":
                    raise ClickHouseError(497, "Table function merge is not allowed for a read-only user")
            m = _TABLE_REF.match(line)
            if m and m.group(2).startswith("system.") and m.group(2)[7:] in HIDDEN_SYSTEM_TABLES:
                raise ClickHouseError(497, f"{role.name}: not enough privileges to read {m.group(2)}")
            if role.readonly:
                self._check_reader_reference(line, role)

    def _check_engine(self, name: str, stmt: Statement, role: Role, lines: list[str]) -> None:
        if SAFE_ENGINE_RE.match(name):
            return
        if name.lower() == "postgresql" and self.pg_collection and not role.readonly and stmt.has_words("CREATE", "DATABASE"):
            args = [ln.strip() for ln in lines if ln.strip().startswith(("Identifier", "Literal"))]
            # CREATE DATABASE <db> ENGINE = PostgreSQL(<collection>): the database name, then the collection only
            if len(args) == 2 and args[1] == f"Identifier {self.pg_collection}":
                return
            raise ClickHouseError(
                497, f"ENGINE = PostgreSQL is only allowed as PostgreSQL({self.pg_collection}) (server-side credentials)"
            )
        raise ClickHouseError(497, f"Engine {name} is not allowed: it reaches the host or the network")

    def _check_reader_reference(self, line: str, role: Role) -> None:
        m = _TABLE_REF.match(line)
        if not m:
            return
        ref = m.group(2)
        if m.group(1) == "UseQuery":
            return self.check_database(ref, role)
        db, dot, table = ref.partition(".")
        if not dot:
            if ref in self.protected_databases and m.group(1) in ("Identifier", "UseQuery"):
                raise ClickHouseError(497, f"{role.name}: not enough privileges to access database {ref}")
            return
        if db == "system" and table in READER_SYSTEM_TABLES:
            return
        if db in self.protected_databases or not role.may_read(db):
            raise ClickHouseError(497, f"{role.name}: not enough privileges to read {ref}")

    def check_database(self, database: str, role: Role) -> None:
        """The current database a request asks for (URL ``database`` or ``USE``)."""
        if role.readonly and (database in self.protected_databases or not role.may_read(database)):
            raise ClickHouseError(497, f"{role.name}: not enough privileges to use database {database}")
