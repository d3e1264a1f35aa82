"""Cleaning rules as Spark column expressions: normalisation, parsing, and the quarantine rules.

Each rule is (name, violated?, detail). A row is quarantined under the *first* rule it breaks,
in the precedence order of ``pulse.domain.RULES``; nothing that breaks a rule is dropped.
Dedup rules need a window over all rows and live in ``dedup_rules``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from pulse.domain import EVENT_TYPE_SYNONYMS, EVENT_TYPES, FX_TO_USD, RAW_COLUMNS

INT_RE = r"^-?[0-9]{1,19}$"  # try_cast then rejects what overflows bigint
NUM_RE = r"^-?[0-9]+(\.[0-9]+)?$"
DEFAULT_CURRENCY = "USD"


@dataclass(frozen=True)
class Rule:
    name: str
    violated: Column
    detail: Column


def _blank_to_null(c: Column) -> Column:
    t = F.trim(c)
    return F.when(t == "", None).otherwise(t)


def parse_event_time(s: Column) -> Column:
    """UTC timestamp from ISO-8601 (Z or ±hh:mm, optional millis), the public dataset's
    'yyyy-MM-dd HH:mm:ss UTC', naive ISO (taken as UTC) or epoch milliseconds; NULL otherwise."""
    return F.coalesce(
        F.try_to_timestamp(s, F.lit("yyyy-MM-dd'T'HH:mm:ss[.SSS]XXX")),
        F.try_to_timestamp(s, F.lit("yyyy-MM-dd HH:mm:ss[.SSS] 'UTC'")),
        F.try_to_timestamp(s, F.lit("yyyy-MM-dd['T'][ ]HH:mm:ss[.SSS]")),
        F.when(s.rlike(r"^[0-9]{12,13}$"), F.timestamp_millis(s.try_cast("bigint"))),
    )


def normalize_event_type(s: Column) -> Column:
    t = F.lower(F.trim(s))
    mapping = F.create_map(*[F.lit(x) for kv in EVENT_TYPE_SYNONYMS.items() for x in kv])
    return F.coalesce(F.element_at(mapping, t), t)


def fx_rate(currency: Column) -> Column:
    mapping = F.create_map(*[x for k, v in FX_TO_USD.items() for x in (F.lit(k), F.lit(v).cast("decimal(12,6)"))])
    return F.element_at(mapping, currency)


def normalize(df: DataFrame) -> DataFrame:
    """Trimmed, typed, normalised columns next to the raw ones (raw kept for the quarantine)."""
    v = {c: _blank_to_null(F.col(c)) for c in RAW_COLUMNS}
    ingest_day = F.to_date(F.col("_ingest_date"))
    currency = F.coalesce(F.upper(v["currency"]), F.lit(DEFAULT_CURRENCY))
    price = F.when(v["price"].rlike(NUM_RE), v["price"].try_cast("decimal(14,2)"))
    return df.select(
        "*",
        v["event_time"].alias("n_event_time_raw"),
        parse_event_time(v["event_time"]).alias("n_event_ts"),
        normalize_event_type(v["event_type"]).alias("n_event_type"),
        F.when(v["user_id"].rlike(INT_RE), v["user_id"].try_cast("bigint")).alias("n_user_id"),
        F.when(v["product_id"].rlike(INT_RE), v["product_id"].try_cast("bigint")).alias("n_product_id"),
        F.when(v["category_id"].rlike(INT_RE), v["category_id"].try_cast("bigint")).alias("n_category_id"),
        F.lower(v["category_code"]).alias("n_category_code"),
        F.lower(v["brand"]).alias("n_brand"),
        price.alias("n_price"),
        currency.alias("n_currency"),
        F.round(price * fx_rate(currency), 2).cast("decimal(14,2)").alias("n_price_usd"),
        v["user_session"].alias("n_user_session"),
        F.lower(v["platform"]).alias("n_platform"),
        F.upper(v["country"]).alias("n_country"),
        v["app_version"].alias("n_app_version"),
        F.lower(v["channel"]).alias("n_channel"),
        # a row without an id gets a deterministic one from its content (user files often have none)
        F.coalesce(v["event_id"], F.substring(F.sha2(F.concat_ws("|", *[F.col(c) for c in RAW_COLUMNS]), 256), 1, 32)).alias(
            "n_event_id"
        ),
        ingest_day.alias("n_ingest_date"),
    )


def row_rules() -> list[Rule]:
    """Rules decided by the row alone, in precedence order (after malformed_line)."""
    c = F.col
    present = lambda name: _blank_to_null(c(name)).isNotNull()  # noqa: E731

    def bad_int(name: str, parsed: str) -> Column:
        return present(name) & c(parsed).isNull()

    missing = [F.when(~present(n), F.lit(n)) for n in ("event_time", "event_type", "user_id")]
    wrong = [F.when(bad_int(n, f"n_{n}"), F.lit(n)) for n in ("user_id", "product_id", "category_id")]
    wrong_detail = F.coalesce(
        *[F.when(bad_int(n, f"n_{n}"), F.concat(F.lit(f"{n}="), c(n))) for n in ("user_id", "product_id", "category_id")],
        F.when(present("price") & c("n_price").isNull(), F.concat(F.lit("price="), c("price"))),
    )
    return [
        Rule("malformed_line", c("_malformed").isNotNull(), F.lit("wrong number of fields")),
        Rule("missing_required_field", F.coalesce(*missing).isNotNull(), F.concat(F.lit("empty "), F.coalesce(*missing))),
        Rule("wrong_type", F.coalesce(*wrong).isNotNull() | (present("price") & c("n_price").isNull()), wrong_detail),
        Rule("invalid_timestamp", c("n_event_ts").isNull(), F.concat(F.lit("event_time="), c("event_time"))),
        Rule(
            "future_timestamp",
            c("n_event_ts") >= F.date_add(c("n_ingest_date"), 2).cast("timestamp"),
            F.concat(F.lit("event_time="), c("event_time"), F.lit(" ingest_date="), c("_ingest_date")),
        ),
        Rule("unknown_event_type", ~c("n_event_type").isin(*EVENT_TYPES), F.concat(F.lit("event_type="), c("event_type"))),
        Rule("unknown_currency", fx_rate(c("n_currency")).isNull(), F.concat(F.lit("currency="), c("currency"))),
        Rule(
            "invalid_price",
            (c("n_price") <= 0) | ((c("n_event_type") == "purchase") & c("n_price").isNull()),
            F.concat(F.lit("price="), F.coalesce(c("price"), F.lit("NULL"))),
        ),
    ]


def first_failing(rules: list[Rule]) -> tuple[Column, Column]:
    """(rule name, detail) of the first violated rule, NULLs when the row passes them all."""
    name: Column | None = None
    detail: Column | None = None
    for rule in reversed(rules):
        name = F.when(rule.violated, F.lit(rule.name)).otherwise(name if name is not None else F.lit(None))
        detail = F.when(rule.violated, rule.detail).otherwise(detail if detail is not None else F.lit(None))
    return name, detail  # type: ignore[return-value]


ARRIVAL_ORDER = ["_ingest_date", "_file", "_row"]  # the first arrival of a duplicate is kept


def dedup_rules(df: DataFrame) -> DataFrame:
    """Among rows that passed the row rules: the first arrival of an event_id wins (later copies are
    ``duplicate_event_id``); then the first of the same user/session/type/product/instant wins
    (re-sent events with a new id are ``near_duplicate``)."""
    natural = ["n_user_id", "n_user_session", "n_event_type", "n_product_id", "n_event_ts"]
    # rows already rejected sit in their own window partitions so they never take rank 1
    df = df.withColumn("_ok", F.col("rule").isNull())
    by_id = Window.partitionBy("_ok", "n_event_id").orderBy(*ARRIVAL_ORDER)
    df = df.withColumn(
        "rule", F.when(F.col("_ok") & (F.row_number().over(by_id) > 1), F.lit("duplicate_event_id")).otherwise(F.col("rule"))
    )
    df = df.withColumn(
        "detail",
        F.when(F.col("rule") == "duplicate_event_id", F.concat(F.lit("event_id="), F.col("n_event_id"))).otherwise(
            F.col("detail")
        ),
    )
    df = df.withColumn("_ok", F.col("rule").isNull())
    by_key = Window.partitionBy("_ok", *natural).orderBy(*ARRIVAL_ORDER)
    near = F.col("_ok") & (F.row_number().over(by_key) > 1)
    df = df.withColumn("_near", near)
    df = df.withColumn("rule", F.when(F.col("_near"), F.lit("near_duplicate")).otherwise(F.col("rule")))
    df = df.withColumn(
        "detail",
        F.when(F.col("_near"), F.lit("same user/session/type/product/time as an earlier event")).otherwise(F.col("detail")),
    )
    return df.drop("_ok", "_near")


def classify(raw: DataFrame) -> DataFrame:
    """Every raw row with ``rule``/``detail`` set when it must go to the quarantine."""
    df = normalize(raw)
    rule, detail = first_failing(row_rules())
    return dedup_rules(df.withColumn("rule", rule).withColumn("detail", detail))
