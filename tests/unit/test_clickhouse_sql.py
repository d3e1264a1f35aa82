"""The server's statement routing: tokens, not substrings."""

from __future__ import annotations

import pytest

from pulse.clickhouse_server.errors import ClickHouseError
from pulse.clickhouse_server.sql import kill_query_target, parse, split_insert


def test_multi_statements_are_refused_but_a_trailing_semicolon_is_fine():
    with pytest.raises(ClickHouseError) as err:
        parse("SELECT 1; SELECT 2")
    assert err.value.code == 62
    assert parse("SELECT 1;  -- done").sql == "SELECT 1"
    assert parse("SELECT 'a; b', `c;d`").kind == "SELECT"  # semicolons inside literals/identifiers
    assert parse("SELECT 1 /* /* nested */ ; still a comment */").kind == "SELECT"
    for sneaky in ("SELECT $$a$$; SELECT 2", "SELECT '\\\\'; SELECT 2", "SELECT 1 /*/ */; SELECT 2"):
        with pytest.raises(ClickHouseError):  # where the engine sees two statements, so do we
            parse(sneaky)


@pytest.mark.parametrize(
    ("sql", "fmt"),
    [
        ("SELECT 1 FORMAT JSON", "JSON"),
        ("SELECT 'x FORMAT CSV'", None),
        ("SELECT format FROM t", None),
        ("SELECT 1 -- FORMAT CSV", None),
        ("SELECT 1 FORMAT `TabSeparated` SETTINGS max_threads = 1", "TabSeparated"),
        ("SELECT (SELECT 1 FORMAT CSV)", None),
    ],
)
def test_output_format_is_the_statement_clause_only(sql, fmt):
    assert parse(sql).output_format == fmt


def test_insert_with_data_is_split_after_the_format_name():
    _, ins = split_insert("", b'INSERT INTO TABLE db.`we\\`ird` ("key", `v`) FORMAT CSV\n1,"FORMAT x"\n')
    assert ins is not None and ins.format == "CSV" and ins.data == b'1,"FORMAT x"\n'
    assert ins.head == 'INSERT INTO TABLE db.`we\\`ird` ("key", `v`)'
    _, ins = split_insert("INSERT INTO t FORMAT RowBinary", b"\x00\x01\xff")
    assert ins is not None and ins.data == b"\x00\x01\xff"  # query in the URL, binary rows in the body
    sql, ins = split_insert("", b"INSERT INTO t SELECT 'a FORMAT CSV' FROM numbers(2)")
    assert ins is None and sql.startswith("INSERT INTO t SELECT")
    sql, ins = split_insert("", b"INSERT INTO t (s) VALUES ('FORMAT CSV')")
    assert ins is None


def test_kinds_reads_and_session_state():
    assert parse("WITH x AS (SELECT 1) SELECT * FROM x").is_read
    assert not parse("SELECT 1 INTO OUTFILE '/tmp/x'").is_read
    assert not parse("INSERT INTO t VALUES (1)").is_read
    assert parse("SET max_threads = 1").changes_session and parse("CREATE TEMPORARY TABLE t (a Int8)").changes_session
    assert not parse("CREATE TABLE t (a Int8) ENGINE = Memory").changes_session


def test_kill_query_target():
    assert kill_query_target(parse("KILL QUERY WHERE query_id = 'a\\'b' SYNC")) == "a'b"
    assert kill_query_target(parse("KILL QUERY WHERE user = 'x'")) is None


def test_non_utf8_query_is_a_clickhouse_error():
    with pytest.raises(ClickHouseError) as err:
        split_insert("", b"SELECT '\xff'")
    assert err.value.code == 36
