"""Which files a load reads, and when it must be a full refresh (pulse.staging.increment.decide)."""

from __future__ import annotations

from pulse.lake.raw import RawFile
from pulse.staging.increment import RULES_VERSION, decide

PREFIX = "events/source=s"


def raw_file(day: str, sha: str = "a", correction: bool = False) -> RawFile:
    return RawFile(f"{PREFIX}/ingest_date={day}/part-00000.csv.gz", day, 10, sha, correction)


DAYS = [raw_file(f"2026-10-0{d}") for d in range(1, 4)]
LOADED = {f.key: f.sha256 for f in DAYS[:2]}
LAST = ("spec1", RULES_VERSION)


def test_only_the_files_no_load_took_are_read():
    plan = decide(LAST, LOADED, DAYS, "spec1")
    assert (plan.mode, plan.reason, plan.files) == ("incremental", "1 new RAW files", DAYS[2:])


def test_nothing_new_reads_nothing():
    plan = decide(LAST, {f.key: f.sha256 for f in DAYS}, DAYS, "spec1")
    assert (plan.mode, plan.reason, plan.files) == ("incremental", "nothing new in RAW", [])


def test_a_days_run_leaves_later_ingest_dates_for_a_later_load():
    """A backfill's run for a day loads the RAW up to that day; files already loaded stay visible, so an old
    day run again reads nothing and is not taken for a removed file (no roll-back to that day)."""
    from datetime import date

    plan = decide(LAST, LOADED, DAYS, "spec1", through=date(2026, 10, 2))
    assert (plan.mode, plan.files, plan.committed) == ("incremental", [], DAYS[:2])
    plan = decide(LAST, LOADED, DAYS, "spec1", through=date(2026, 10, 3))
    assert (plan.mode, plan.files) == ("incremental", DAYS[2:])
    everything = {f.key: f.sha256 for f in DAYS}
    plan = decide(LAST, everything, DAYS, "spec1", through=date(2026, 10, 1))
    assert (plan.mode, plan.reason, plan.files, plan.committed) == ("incremental", "nothing new in RAW", [], DAYS)
    plan = decide(None, {}, DAYS, "spec1", through=date(2026, 10, 1))
    assert (plan.mode, plan.files) == ("full", DAYS[:1])  # a first load through a day reads up to that day


def test_each_reason_for_a_full_refresh_is_named():
    late, fix = raw_file("2026-09-30"), raw_file("2026-10-04", correction=True)
    cases = {
        "asked for (--full-refresh)": decide(LAST, LOADED, DAYS, "spec1", full_refresh=True),
        "the source's first load": decide(None, {}, DAYS, "spec1"),
        "a release before incremental loads": decide(("spec1", None), LOADED, DAYS, "spec1"),
        f"the cleaning rules changed since the last full refresh (old -> {RULES_VERSION})": decide(
            ("spec1", "old"), LOADED, DAYS, "spec1"
        ),
        "spec changed since the last full refresh (spec1 -> spec2)": decide(LAST, LOADED, DAYS, "spec2"),
        f"{DAYS[1].key} was removed or rewritten": decide(LAST, LOADED, [DAYS[0], raw_file("2026-10-02", "b"), DAYS[2]], "spec1"),
        f"{DAYS[0].key} was removed": decide(LAST, LOADED, DAYS[1:], "spec1"),
        "a correction partition (ingest_date=2026-10-04)": decide(LAST, LOADED, [*DAYS, fix], "spec1"),
        f"{late.key} sorts before files already loaded": decide(LAST, LOADED, [late, *DAYS], "spec1"),
    }
    for reason, plan in cases.items():
        assert plan.mode == "full" and reason in plan.reason, (reason, plan.reason)
        assert plan.files == plan.committed  # a full refresh reads every committed file


def test_derived_sessions_split_at_30_minutes_and_at_midnight(spark):
    """A session Pulse derives depends on its user's day alone, so a load can derive a touched day again."""
    from datetime import datetime

    from pulse.staging.transform import derived_sessions

    times = ["2026-10-01 22:00:00", "2026-10-01 22:29:00", "2026-10-01 23:01:00", "2026-10-01 23:50:00",
             "2026-10-02 00:05:00", "2026-10-02 00:20:00"]  # fmt: skip
    rows = [("u1", datetime.fromisoformat(t + "+00:00"), f"e{i}") for i, t in enumerate(times)]  # UTC, whatever the host zone
    rows.append(("u2", datetime.fromisoformat("2026-10-01 22:10:00+00:00"), "e9"))
    frame = spark.createDataFrame(rows, "n_user_id string, n_event_ts timestamp, n_event_id string")
    got = {r.n_event_id: r.session_id for r in derived_sessions(frame).collect()}
    assert got == {
        "e0": "derived-u1-20261001-1", "e1": "derived-u1-20261001-1",  # 29 minutes apart: one session
        "e2": "derived-u1-20261001-2",  # 32 minutes after: a new one
        "e3": "derived-u1-20261001-3",
        "e4": "derived-u1-20261002-1", "e5": "derived-u1-20261002-1",  # 15 minutes after, but the next day
        "e9": "derived-u2-20261001-1",
    }  # fmt: skip


def test_the_new_rows_keys_hold_the_instant_in_utc_whatever_the_host_zone(spark):
    """The (user, instant) pairs go to Postgres (in UTC) to find earlier near duplicates: a collected Spark
    timestamp is a naive datetime in the host's zone (the unit tests also run under Asia/Kolkata), so the
    keys must carry the instant itself. User-days are UTC days, for rows without a client session only."""
    from datetime import UTC, date, datetime

    from pulse.staging.increment import new_keys

    late = datetime(2026, 10, 31, 22, 0, tzinfo=UTC)  # the next day in Kolkata (03:30)
    rows = [("e1", "u1", late, None, None), ("e2", "u2", late, "s2", None), ("e3", "u3", late, None, "bad_price")]
    judged = spark.createDataFrame(
        rows, "n_event_id string, n_user_id string, n_event_ts timestamp, n_user_session string, rule string"
    )
    keys = new_keys(judged)
    assert keys.ids == {("e1",), ("e2",)}  # a row a rule took is no dedup candidate
    assert keys.pairs == {("u1", late), ("u2", late)}
    assert all(instant.utcoffset() is not None for _, instant in keys.pairs)
    assert keys.session_days == {("u1", date(2026, 10, 31))}
