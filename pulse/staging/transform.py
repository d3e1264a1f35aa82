"""From classified raw rows to the staging rows Spark writes: clean events (sessions derived where missing) and
the quarantine. The tables aggregated from the events are SQL, in ``pulse.staging.aggregates``."""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

SESSION_GAP_SECONDS = 30 * 60
DERIVED = "derived"  # the prefix of a session id Pulse derived (the event came without one)


def derived_sessions(missing: DataFrame) -> DataFrame:
    """``session_id`` for events without a client session id: a new session after 30 minutes of inactivity,
    and at midnight (UTC), per user. Split at midnight, a session is a function of its user's events of that
    day alone, so a load recomputes the sessions of the days it touched and no others.
    ``missing``: n_user_id, n_event_ts, n_event_id (and any other columns, kept)."""
    day = F.to_date("n_event_ts")
    w = Window.partitionBy("n_user_id", day).orderBy("n_event_ts", "n_event_id")
    gap = F.col("n_event_ts").cast("long") - F.lag(F.col("n_event_ts").cast("long")).over(w)
    starts = F.when(gap.isNull() | (gap > SESSION_GAP_SECONDS), 1).otherwise(0)
    return (
        missing.withColumn("_seq", F.sum(starts).over(w))
        .withColumn(
            "session_id",
            F.concat_ws("-", F.lit(DERIVED), F.col("n_user_id"), F.date_format(day, "yyyyMMdd"), F.col("_seq").cast("string")),
        )
        .drop("_seq")
    )


def _sessionize_missing(events: DataFrame, prior: DataFrame | None) -> DataFrame:
    """Client session ids kept; the others derived, together with ``prior`` (the derived-session events
    earlier loads kept on the same user-days, flagged ``_prior``, whose ids may change)."""
    has = events.filter(F.col("n_user_session").isNotNull()).withColumn("session_id", F.col("n_user_session"))
    missing = events.filter(F.col("n_user_session").isNull())
    if prior is not None:
        missing = missing.withColumn("_prior", F.lit(False)).unionByName(prior, allowMissingColumns=True)
    return has.unionByName(derived_sessions(missing), allowMissingColumns=prior is not None)


def clean_events(classified: DataFrame, source: str, run_id: str, prior: DataFrame | None = None) -> DataFrame:
    """The events that passed every rule, as staging.events rows. With ``prior`` (see _sessionize_missing)
    the result also holds those earlier events, flagged ``_prior``, with their session recomputed."""
    ok = classified.filter(F.col("rule").isNull())
    sessions = _sessionize_missing(ok, prior)
    extra = [F.col("_prior")] if prior is not None else []
    return sessions.select(
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
        *extra,
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
        F.col("n_event_id").alias("event_id"),
    )
