"""The stream's producer and session model on their own (no broker: messages are built, not sent)."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from pulse.config import ensure_secrets, load_settings
from pulse.streaming.producer import DEFECTS, ProduceParams, StreamProducer, iso_ms
from pulse.streaming.reconcile import Reconciliation
from pulse.streaming.sessions import SessionModel


def test_sessions_walk_the_funnel_in_order_and_never_share_an_instant():
    model = SessionModel(users=500, concurrent=50, seed=3)
    last: dict[str, tuple[str, int]] = {}
    for i in range(20_000):
        event, ms = model.next_event(1_000_000 + i // 10)  # ten events per millisecond
        kind, session = event["event_type"], event["session_id"]
        assert kind in ("view", "click", "add_to_cart", "purchase")  # names outside the demo's vocabulary too
        assert isinstance(event["user_id"], str) and isinstance(event["product_id"], str)  # text ids
        if session in last:
            before, before_ms = last[session]
            assert ms > before_ms
            assert kind != "add_to_cart" or before == "click"
            assert kind != "purchase" or before == "add_to_cart"
        else:
            assert kind == "view"
        last[session] = (kind, ms)
    assert SessionModel(users=500, seed=3).next_event(5) == SessionModel(users=500, seed=3).next_event(5)


@pytest.fixture
def producer(tmp_path, monkeypatch):
    monkeypatch.setenv("PULSE_HOME", str(tmp_path))
    ensure_secrets()  # librdkafka refuses a producer without SASL credentials
    settings = load_settings()
    return StreamProducer(settings, ProduceParams(dirty_rate=0.3, users=1_000, seed=9, raw_dir=tmp_path / "raw"))


def test_every_message_is_counted_once_in_the_ground_truth(producer):
    kinds: dict[str, int] = defaultdict(int)
    now = 1_790_000_000_000
    for i in range(5_000):
        key, value = producer.next_message(now + i)
        try:
            body = json.loads(value)
        except ValueError:
            kinds["malformed"] += 1
            continue
        assert key == str(body.get("user_id", key.decode())).encode()
    truth = producer.truth.as_dict()
    assert truth["events"] + sum(truth["bad"].values()) == truth["sent"] == 5_000
    assert truth["bad"]["malformed_line"] == kinds["malformed"]
    assert set(truth["bad"]) == {r for r in DEFECTS.values() if r}
    assert sum(r["events"] for r in truth["per_minute"]) == truth["events"] == sum(r["events"] for r in truth["per_day"])
    assert all(r["users"] <= r["events"] for r in truth["per_minute"])
    # the batch path's copy: every well-formed message but the too-late ones (no batch counterpart)
    mirrored = sum(len(rows) for rows in producer.raw_rows.values())
    assert mirrored == truth["sent"] - truth["bad"]["malformed_line"] - truth["bad"]["too_late"]


def test_iso_ms_is_utc_with_milliseconds():
    assert iso_ms(1_790_000_000_123) == "2026-09-21T14:13:20.123Z"


def test_reconciliation_lists_every_difference():
    same = Reconciliation(day=None, source="s", dau_batch=5, dau_stream=5, events={"view": (9, 9)})  # type: ignore[arg-type]
    assert same.ok and "MATCH" in same.report()
    off = Reconciliation(day=None, source="s", dau_batch=5, dau_stream=6, events={"view": (9, 8), "click": (1, 1)})  # type: ignore[arg-type]
    assert not off.ok and off.differences == ["DAU: batch 5 vs stream 6", "view events: batch 9 vs stream 8"]
