"""Just enough of ClickHouse's lexical grammar to route a request safely.

The engine parses every statement itself; the server only needs to know, before running it, where
one statement ends (multi-statements are refused), what kind it is, which output format it names,
and where an ``INSERT … FORMAT x`` head ends and its data begins. All of that depends on tokens,
never on substrings: ``'a; b'``, ``"format"`` or ``-- FORMAT CSV`` inside a literal, identifier or
comment must not count. Offsets are byte offsets when the text was decoded as latin-1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pulse.clickhouse_server.errors import ClickHouseError

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_NUMBER = re.compile(r"[0-9][0-9A-Za-z_.]*(?:[eEpP][+-]?[0-9]+)?")
_HEREDOC = re.compile(r"\$([A-Za-z0-9_]*)\$")


@dataclass(frozen=True)
class Token:
    kind: str  # word | ident (quoted identifier) | string | number | punct
    text: str  # the source text
    start: int
    end: int
    depth: int  # parenthesis depth at the token

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else ""

    @property
    def name(self) -> str:
        """An identifier's name, quotes and escapes removed."""
        if self.kind == "ident":
            q = self.text[0]
            return re.sub(r"\\(.)", r"\1", self.text[1:-1].replace(q + q, q))
        return self.text


def _closing(sql: str, i: int, quote: str) -> int:
    """Index after the literal/identifier opened at ``i`` (backslash escapes and doubled quotes);
    -1 when it is not closed."""
    j = i + 1
    while j < len(sql):
        c = sql[j]
        if c == "\\":
            j += 2
            continue
        if c == quote:
            if j + 1 < len(sql) and sql[j + 1] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    return -1


def _comment_end(sql: str, i: int) -> int:
    """Index after the block comment opened at ``i``; ClickHouse nests them. -1 when not closed."""
    depth, j = 0, i
    while j < len(sql) - 1:
        pair = sql[j : j + 2]
        if pair == "/*":
            depth, j = depth + 1, j + 2
        elif pair == "*/":
            depth, j = depth - 1, j + 2
            if depth == 0:
                return j
        else:
            j += 1
    return -1


def tokenize(sql: str, stop_after_format: bool = False, partial: bool = False) -> list[Token]:
    """Tokens of ``sql``. With ``stop_after_format`` the scan ends after ``INSERT … FORMAT <name>``
    (what follows is data, not SQL). ``partial``: ``sql`` may be cut anywhere, so an unterminated
    literal or comment ends the scan instead of being an error."""

    def unterminated(what: str) -> None:
        if not partial:
            raise ClickHouseError(62, f"Syntax error: unterminated {what}")

    out: list[Token] = []
    i, depth, n = 0, 0, len(sql)
    while i < n:
        c = sql[i]
        if c.isspace():
            i += 1
        elif sql.startswith("--", i) or c == "#":
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif sql.startswith("/*", i):
            j = _comment_end(sql, i)
            if j < 0:
                unterminated("comment")
                break
            i = j
        elif c in "'\"`":
            j = _closing(sql, i, c)
            if j < 0:
                unterminated("string literal" if c == "'" else "quoted identifier")
                break
            out.append(Token("string" if c == "'" else "ident", sql[i:j], i, j, depth))
            i = j
        elif c == "$" and (m := _HEREDOC.match(sql, i)):
            j = sql.find(m.group(0), m.end())
            if j < 0:
                unterminated("heredoc")
                break
            j += len(m.group(0))
            out.append(Token("string", sql[i:j], i, j, depth))
            i = j
        elif m := _WORD.match(sql, i):
            out.append(Token("word", m.group(0), i, m.end(), depth))
            i = m.end()
        elif m := _NUMBER.match(sql, i):
            out.append(Token("number", m.group(0), i, m.end(), depth))
            i = m.end()
        else:
            if c == "(":
                depth += 1
            elif c == ")":
                depth = max(0, depth - 1)
            out.append(Token("punct", c, i, i + 1, depth))
            i += 1
        if stop_after_format and _insert_format_head(out):
            break
    return out


def _insert_format_head(out: list[Token]) -> bool:
    """The tokens so far end ``INSERT … FORMAT <name>``: what follows is data."""
    return (
        len(out) >= 2
        and out[-2].upper == "FORMAT"
        and out[-2].depth == 0
        and out[0].upper == "INSERT"
        and out[-1].kind in ("word", "ident")
    )


@dataclass(frozen=True)
class Statement:
    sql: str  # the statement, without a trailing semicolon
    tokens: list[Token]
    kind: str  # SELECT, INSERT, CREATE, SET, USE, … (WITH and a leading parenthesis count as SELECT)
    output_format: str | None  # FORMAT named by a non-INSERT statement

    def has_words(self, *words: str) -> bool:
        """The keywords appear in this order, adjacent, outside literals and identifiers."""
        ups = [t.upper for t in self.tokens]
        return any(ups[i : i + len(words)] == list(words) for i in range(len(ups) - len(words) + 1))

    @property
    def is_read(self) -> bool:
        """Cannot change data or schema (what GET and read-only users may run)."""
        return self.kind in READ_KINDS and not self.has_words("INTO", "OUTFILE")

    @property
    def changes_session(self) -> bool:
        """Leaves state behind in the engine connection (settings, current database, temporary tables)."""
        return self.kind in ("SET", "USE") or self.has_words("TEMPORARY")


READ_KINDS = {"SELECT", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "SET", "USE", "CHECK"}


def parse(sql: str) -> Statement:
    """One statement; a second statement after a semicolon is refused, as ClickHouse's HTTP interface does."""
    tokens = tokenize(sql)
    for i, tok in enumerate(tokens):
        if tok.text == ";" and tok.kind == "punct":
            if i + 1 < len(tokens):
                raise ClickHouseError(62, "Syntax error (Multi-statements are not allowed)")
            sql, tokens = sql[: tok.start], tokens[:i]
            break
    if not tokens:
        raise ClickHouseError(62, "Empty query")
    first = next((t for t in tokens if t.kind == "word"), tokens[0])
    kind = first.upper or first.text
    if kind == "WITH" or tokens[0].text == "(":
        kind = "SELECT"
    return Statement(sql.strip(), tokens, kind, None if kind == "INSERT" else _output_format(tokens))


def _output_format(tokens: list[Token]) -> str | None:
    """The last top-level ``FORMAT <name>`` that ends the statement (optionally before SETTINGS)."""
    for i in range(len(tokens) - 2, -1, -1):
        tok, nxt = tokens[i], tokens[i + 1]
        if tok.upper == "FORMAT" and tok.depth == 0 and nxt.kind in ("word", "ident"):
            after = tokens[i + 2] if i + 2 < len(tokens) else None
            if after is None or after.upper == "SETTINGS":
                return nxt.name
    return None


@dataclass(frozen=True)
class InsertWithData:
    head: str  # "INSERT INTO t (a, b) [SETTINGS …]" (what the engine's streaming insert takes)
    statement: str  # the head with its FORMAT clause (what the policy checks)
    format: str
    data: bytes


def split_insert(url_query: str, body: bytes) -> tuple[str, InsertWithData | None]:
    """(query text, insert data). ClickHouse concatenates the ``query`` parameter, a newline and the
    body; for ``INSERT … FORMAT x`` the data starts after one whitespace following the format name."""
    whole = (url_query.encode() + b"\n" + body) if url_query and body else (url_query.encode() or body)
    head_text = whole[:1_048_576].decode("latin-1")
    tokens = tokenize(head_text, stop_after_format=True, partial=True)
    if len(tokens) >= 3 and tokens[0].upper == "INSERT" and tokens[-2].upper == "FORMAT" and tokens[-2].depth == 0:
        fmt_tok = tokens[-1]
        rest = whole[fmt_tok.end :]
        if rest[:2] == b"\r\n":
            rest = rest[2:]
        elif rest[:1] in (b" ", b"\n", b"\t", b"\r"):
            rest = rest[1:]
        head = whole[: tokens[-2].start].decode("utf-8").strip()
        return head, InsertWithData(head, whole[: fmt_tok.end].decode("utf-8"), fmt_tok.name, rest)
    try:
        return whole.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        raise ClickHouseError(36, f"The query is not valid UTF-8 (byte {exc.start})") from None


def kill_query_target(stmt: Statement) -> str | None:
    """For ``KILL QUERY WHERE query_id = '<id>'``: the id (the server maps it to the engine's query)."""
    ups = [(t.upper, t) for t in stmt.tokens]
    if len(ups) >= 6 and ups[0][0] == "KILL" and ups[1][0] == "QUERY" and ups[2][0] == "WHERE":
        col, eq, lit = stmt.tokens[3], stmt.tokens[4], stmt.tokens[5]
        if col.name.lower() == "query_id" and eq.text == "=" and lit.kind == "string":
            return unquote_string(lit.text)
    return None


def unquote_string(text: str) -> str:
    body = text[1:-1].replace("''", "'")
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}.get(m.group(1), m.group(1)), body)


def setting_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ClickHouseError(115, f"Unknown setting '{name}'")
    return name
