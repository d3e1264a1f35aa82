"""The Kafka service: Apache Kafka 4 (KRaft) from Maven-resolved jars, started by Pulse, SASL on
loopback; a real confluent-kafka client produces and consumes, restarts keep data and offsets."""

from __future__ import annotations

import uuid

import psutil
import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from pulse.services.kafka import Kafka

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def kafka(stack_home):
    svc = Kafka(stack_home)
    svc.start()
    yield svc
    svc.stop()


def produce(cfg: dict, topic: str, n: int, start: int = 0) -> None:
    producer = Producer({**cfg, "enable.idempotence": True, "acks": "all"})
    for i in range(start, start + n):
        producer.produce(topic, key=str(i % 7), value=f"message-{i}")
    assert producer.flush(30) == 0


def consume(cfg: dict, topic: str, group: str, want: int, commit: bool = True) -> list[str]:
    consumer = Consumer({**cfg, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    got: list[str] = []
    try:
        while len(got) < want:
            msg = consumer.poll(10)
            assert msg is not None, f"timed out after {len(got)} of {want} messages"
            assert msg.error() is None, msg.error()
            got.append(msg.value().decode())
        if commit:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return got


def test_broker_listens_on_loopback_only_with_sasl(kafka):
    cfg = kafka.settings.kafka
    ports = {cfg.port, cfg.controller_port}
    listening = {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.net_connections("tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port in ports
    }
    assert listening == {("127.0.0.1", cfg.port), ("127.0.0.1", cfg.controller_port)}
    assert kafka.properties_file.stat().st_mode & 0o077 == 0  # holds the SASL passwords
    assert cfg.password not in kafka.log_path.read_text() and cfg.broker_password not in kafka.log_path.read_text()


def test_round_trip_and_restart_keeps_messages_and_committed_offsets(kafka):
    cfg = kafka.settings.kafka.client_config()
    topic = f"roundtrip-{uuid.uuid4().hex[:6]}"
    assert kafka.create_topic(topic, partitions=3) is True
    assert kafka.create_topic(topic, partitions=3) is False  # idempotent
    produce(cfg, topic, 100)
    first = consume(cfg, topic, "g1", 100)
    assert sorted(first) == sorted(f"message-{i}" for i in range(100))
    kafka.stop()
    kafka.start()  # same cluster id and data dir: messages and the group's offsets survive
    produce(cfg, topic, 20, start=100)
    after = consume(cfg, topic, "g1", 20)  # the committed offsets: only what came after
    assert sorted(after) == sorted(f"message-{i}" for i in range(100, 120))
    again = consume(cfg, topic, f"fresh-{uuid.uuid4().hex[:4]}", 120, commit=False)  # nothing was lost
    assert len(set(again)) == 120
    assert "lag" in kafka.status().detail and topic in kafka.status().detail


def test_wrong_password_and_no_sasl_are_refused(kafka):
    cfg = kafka.settings.kafka.client_config()
    errors: list[KafkaError] = []
    bad = AdminClient({**cfg, "sasl.password": "wrong", "error_cb": errors.append})
    with pytest.raises(KafkaException):
        bad.list_topics(timeout=10)
    for _ in range(20):  # error callbacks are served by poll()
        bad.poll(0.5)
        if errors:
            break
    assert any(e.code() == KafkaError._AUTHENTICATION and "Invalid username or password" in e.str() for e in errors), errors
    # without SASL the broker answers nobody; that it is up and serving is shown by the right login, just before
    assert AdminClient(cfg).list_topics(timeout=10).brokers, "the broker is down: a refusal would prove nothing"
    plain_errors: list[KafkaError] = []
    plain = AdminClient(
        {"bootstrap.servers": cfg["bootstrap.servers"], "socket.timeout.ms": 5000, "error_cb": plain_errors.append}
    )
    with pytest.raises(KafkaException) as refused:
        plain.list_topics(timeout=5)
    assert refused.value.args[0].code() == KafkaError._TRANSPORT, refused.value
