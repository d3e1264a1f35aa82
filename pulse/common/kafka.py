"""Kafka admin connections for every part (the broker's service, the stream's topic, status)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pulse.config import KafkaConfig

LOG = logging.getLogger("pulse.kafka")


def admin(cfg: KafkaConfig, timeout: float = 5.0) -> Any:
    from confluent_kafka.admin import AdminClient

    # librdkafka's own log lines go to Python logging, not straight onto the user's terminal
    return AdminClient({**cfg.client_config(), "socket.timeout.ms": int(timeout * 1000)}, logger=LOG)


def create_topic(cfg: KafkaConfig, name: str, partitions: int = 3, retention_ms: int | None = None) -> bool:
    """Create a topic if it is missing (idempotent). Returns True if it was created."""
    from confluent_kafka.admin import NewTopic

    client = admin(cfg)
    if name in client.list_topics(timeout=5).topics:
        return False
    config = {"retention.ms": str(retention_ms)} if retention_ms else {}
    # replication factor -1: the cluster's default (1 on the local broker, 3 on a managed cluster)
    futures = client.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=-1, config=config)])
    futures[name].result(timeout=30)
    return True
