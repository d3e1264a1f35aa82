"""From classified raw rows to the staging tables: clean events, quarantine, users, products, daily aggregates."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from pulse.sources.spec import Roles

SESSION_GAP_SECONDS = 30 * 60
DEMO_ROLES = Roles()


def is_revenue(roles: Roles) -> Column:
    return F.col("event_type").isin(*roles.revenue) if roles.revenue else F.lit(False)


def revenue_amount(roles: Roles) -> Column:
    """What an event adds to net revenue: a revenue event its price, a refund minus its price (given negative
    or not: -|price|), anything else nothing (NULL)."""
    refund = F.col("event_type").isin(*roles.refund) if roles.refund else F.lit(False)
    return F.when(is_revenue(roles), F.col("price_usd")).when(refund, -F.abs(F.col("price_usd")))


def _step(roles: Roles, i: int) -> Column:
    """Events of the funnel's i-th step (no funnel: every event is a view of its product)."""
    if not roles.funnel:
        return F.lit(i == 0)
    return F.col("event_type") == roles.funnel[i] if i < len(roles.funnel) else F.lit(False)


def _sessionize_missing(events: DataFrame) -> DataFrame:
    """Events without a client session id get one from 30-minute inactivity gaps per user."""
    has = events.filter(F.col("n_user_session").isNotNull()).withColumn("session_id", F.col("n_user_session"))
    missing = events.filter(F.col("n_user_session").isNull())
    w = Window.partitionBy("n_user_id").orderBy("n_event_ts", "n_event_id")
    gap = F.col("n_event_ts").cast("long") - F.lag(F.col("n_event_ts").cast("long")).over(w)
    starts = F.when(gap.isNull() | (gap > SESSION_GAP_SECONDS), 1).otherwise(0)
    missing = (
        missing.withColumn("_seq", F.sum(starts).over(w))
        .withColumn(
            "session_id", F.concat_ws("-", F.lit("derived"), F.col("n_user_id").cast("string"), F.col("_seq").cast("string"))
        )
        .drop("_seq")
    )
    return has.unionByName(missing)


def clean_events(classified: DataFrame, source: str, run_id: str) -> DataFrame:
    ok = classified.filter(F.col("rule").isNull())
    return _sessionize_missing(ok).select(
        F.lit(source).alias("source"),
        F.col("n_event_id").alias("event_id"),
        F.col("n_event_ts").alias("event_time"),
        F.to_date("n_event_ts").alias("event_date"),
        F.hour("n_event_ts").cast("smallint").alias("event_hour"),
        F.col("n_event_type").alias("event_type"),
        F.col("n_user_id").alias("user_id"),
        F.col("session_id"),
        F.col("n_product_id").alias("product_id"),
        F.col("n_category_id").alias("category_id"),
        F.col("n_category_code").alias("category_code"),
        F.col("n_brand").alias("brand"),
        F.col("n_price").alias("price"),
        F.col("n_currency").alias("currency"),
        F.col("n_price_usd").alias("price_usd"),
        F.col("n_platform").alias("platform"),
        F.col("n_country").alias("country"),
        F.col("n_app_version").alias("app_version"),
        F.col("n_channel").alias("channel"),
        F.col("n_ingest_date").alias("ingest_date"),
        (F.col("n_ingest_date") > F.to_date("n_event_ts")).alias("is_late"),
        F.lit(run_id).alias("run_id"),
        F.col("_properties").alias("properties"),
    )


def quarantine(classified: DataFrame, source: str, run_id: str) -> DataFrame:
    return classified.filter(F.col("rule").isNotNull()).select(
        F.lit(source).alias("source"),
        F.lit(run_id).alias("run_id"),
        F.col("n_ingest_date").alias("ingest_date"),
        F.col("_file").alias("source_file"),
        F.col("_row").alias("row_number"),
        F.col("rule"),
        F.col("detail"),
        F.col("raw_record"),
    )


def users(events: DataFrame, roles: Roles = DEMO_ROLES) -> DataFrame:
    revenue = F.sum(revenue_amount(roles))
    return events.groupBy("source", "user_id").agg(
        F.min("event_time").alias("first_seen_at"),
        F.max("event_time").alias("last_seen_at"),
        F.min("event_date").alias("first_event_date"),
        F.min_by("platform", "event_time").alias("first_platform"),
        F.min_by("country", "event_time").alias("country"),
        F.min_by("channel", "event_time").alias("acquisition_channel"),
        F.max_by("app_version", "event_time").alias("last_app_version"),
        F.count(F.lit(1)).alias("events"),
        F.count_distinct("session_id").alias("sessions"),
        F.count(F.when(is_revenue(roles), 1)).alias("purchases"),
        F.coalesce(revenue, F.lit(0).cast("decimal(14,2)")).cast("decimal(16,2)").alias("revenue_usd"),
    )


def products(events: DataFrame, roles: Roles = DEMO_ROLES) -> DataFrame:
    """Per product: its latest attributes, and events of the funnel's first two steps and of revenue
    (the published names: views, carts, purchases)."""
    return (
        events.filter(F.col("product_id").isNotNull())
        .groupBy("source", "product_id")
        .agg(
            F.max_by("category_id", "event_time").alias("category_id"),
            F.max_by("category_code", "event_time").alias("category_code"),
            F.max_by("brand", "event_time").alias("brand"),
            F.max_by("price_usd", "event_time").alias("last_price_usd"),
            F.count(F.when(_step(roles, 0), 1)).alias("views"),
            F.count(F.when(_step(roles, 1), 1)).alias("carts"),
            F.count(F.when(is_revenue(roles), 1)).alias("purchases"),
        )
    )


def daily_event_counts(events: DataFrame) -> DataFrame:
    return events.groupBy("source", "event_date", "event_type").agg(
        F.count(F.lit(1)).alias("events"), F.count_distinct("user_id").alias("users")
    )


def daily_active_users(events: DataFrame, users_df: DataFrame, roles: Roles = DEMO_ROLES) -> DataFrame:
    """DAU and sessions of the events the ``active`` role names (default: all), new users by first event."""
    new = users_df.groupBy("source", F.col("first_event_date").alias("event_date")).agg(F.count(F.lit(1)).alias("new_users"))
    names = roles.active_events()  # as the marts' role_events('active')
    active = events if names is None else events.filter(F.col("event_type").isin(*names))
    active = active.groupBy("source", "event_date").agg(
        F.count_distinct("user_id").alias("dau"), F.count_distinct("session_id").alias("sessions")
    )
    return active.join(new, ["source", "event_date"], "left").fillna(0, ["new_users"])


def daily_revenue(events: DataFrame, roles: Roles = DEMO_ROLES) -> DataFrame:
    """Net revenue per day: revenue events minus refunds (days with either)."""
    money = events.withColumn("_amount", revenue_amount(roles)).filter(F.col("_amount").isNotNull())
    purchases = F.count(F.when(is_revenue(roles), 1))
    return (
        money.groupBy("source", "event_date")
        .agg(
            purchases.alias("purchases"),  # revenue events (line items): the data has no order id
            F.sum("_amount").cast("decimal(16,2)").alias("revenue_usd"),
            F.count_distinct(F.when(is_revenue(roles), F.col("user_id"))).alias("paying_users"),
        )
        .withColumn(
            "avg_purchase_value_usd",
            F.when(F.col("purchases") > 0, F.round(F.col("revenue_usd") / F.col("purchases"), 2)).cast("decimal(14,2)"),
        )
    )
