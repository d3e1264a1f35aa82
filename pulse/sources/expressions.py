"""A source spec's fields are Spark SQL expressions, code that runs inside the cleaning and streaming
jobs: each is checked on Spark's own parse before it is used, as the ClickHouse service checks SQL.

Allowed: column references (nested fields too), literals, operators, CASE, CAST, lambdas, and the
functions of ``ALLOWED_FUNCTIONS`` — deterministic, pure functions of their arguments. Refused: anything
else, among it ``reflect``/``java_method``, UDFs and temporary functions (an unknown name is refused),
subqueries (they read tables), functions that read files, the environment or the clock, or draw random
numbers (a re-run of a load must give the same rows)."""

from __future__ import annotations

import json
from dataclasses import dataclass

_ALLOWED = (
    # conditionals and nulls
    "coalesce nullif nvl nvl2 ifnull if iff isnull isnotnull isnan nanvl greatest least when "
    # strings
    "lower upper lcase ucase initcap trim ltrim rtrim btrim lpad rpad length char_length character_length "
    "substring substr left right concat concat_ws replace translate split split_part regexp_extract "
    "regexp_extract_all regexp_replace regexp_like rlike like ilike startswith endswith contains instr "
    "locate position format_string printf repeat reverse soundex levenshtein ascii chr char elt overlay "
    "base64 unbase64 encode decode to_char to_varchar string collate "
    # numbers
    "abs ceil ceiling floor round bround sign signum sqrt exp ln log log10 log2 pow power mod pmod "
    "positive negative try_add try_subtract try_multiply try_divide div conv hex unhex bin "
    "int bigint smallint tinyint double float decimal boolean try_cast cast to_number try_to_number "
    # dates and times
    "to_timestamp try_to_timestamp to_timestamp_ntz to_timestamp_ltz to_date to_utc_timestamp "
    "from_utc_timestamp timestamp_seconds timestamp_millis timestamp_micros unix_timestamp to_unix_timestamp "
    "from_unixtime date_format date_add date_sub dateadd date_diff datediff date_trunc trunc make_date "
    "make_timestamp make_timestamp_ntz year month day dayofmonth dayofweek dayofyear hour minute second "
    "weekofyear quarter unix_seconds unix_millis unix_micros date timestamp make_interval "
    # JSON, arrays, maps, structs (GA4's nested event_params)
    "get_json_object json_tuple from_json to_json schema_of_json json_array_length json_object_keys "
    "element_at try_element_at get array array_contains array_position array_join array_distinct "
    "arrays_zip size cardinality slice flatten sort_array array_sort filter transform exists forall "
    "aggregate reduce map map_from_arrays map_from_entries map_keys map_values map_filter map_concat "
    "str_to_map named_struct struct "
    # hashes (stable ids)
    "md5 sha1 sha sha2 crc32 hash xxhash64 "
    # URLs (utm parameters)
    "parse_url url_decode url_encode try_url_decode"
)
ALLOWED_FUNCTIONS = frozenset(_ALLOWED.split())
# nodes that carry a query plan: a subquery could read any table
PLAN_NODES = ("Subquery", "Exists", "ListQuery", "UnresolvedRelation", "TableValuedFunction")


class ExpressionError(ValueError):
    """An expression that does not parse or uses what a spec may not."""


@dataclass(frozen=True)
class Parsed:
    text: str
    functions: frozenset[str]
    columns: frozenset[str]  # top-level input columns it reads (the first part of a nested reference)


def parse(spark, text: str) -> Parsed:
    """Spark's parse of ``text``, checked against the allow-list; ExpressionError names what is refused."""
    parser = spark._jsparkSession.sessionState().sqlParser()
    try:
        tree = json.loads(parser.parseExpression(text).toJSON())
    except Exception as exc:  # py4j wraps Spark's ParseException
        message = str(exc).split("\n")[0].removeprefix("An error occurred while calling o0.parseExpression.")
        raise ExpressionError(f"does not parse: {_first_line(message)}") from None
    return _checked(text, tree)


def _first_line(message: str) -> str:
    for prefix in ("org.apache.spark.sql.catalyst.parser.ParseException:", "[PARSE_SYNTAX_ERROR]"):
        message = message.replace(prefix, "")
    return message.strip()[:200]


def _checked(text: str, tree: list[dict]) -> Parsed:
    functions, columns = set(), set()
    for node in tree:
        kind = node["class"].rsplit(".", 1)[-1]
        if any(p in kind for p in PLAN_NODES) or "plan" in node:
            raise ExpressionError("a subquery is not allowed (a field is computed from its own row)")
        if kind == "UnresolvedFunction":
            parts = _name_parts(node)
            name = parts[-1].lower()
            if len(parts) > 1 or name not in ALLOWED_FUNCTIONS:
                raise ExpressionError(
                    f"function {'.'.join(parts)!r} is not allowed in a spec (only deterministic built-in functions "
                    "of the row: no reflect/java_method, UDFs, files, environment, clock or random numbers)"
                )
            functions.add(name)
        elif kind == "UnresolvedAttribute":
            columns.add(_name_parts(node)[0])
    return Parsed(text, frozenset(functions), frozenset(columns))


def _name_parts(node: dict) -> list[str]:
    value = node.get("nameParts") or node.get("name") or ""
    if isinstance(value, list):
        return [str(v) for v in value]
    return [p.strip() for p in str(value).strip("[]").split(",")]  # Spark prints a Seq as "[a, b]"
