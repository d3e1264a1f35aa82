"""The events topic, created by Pulse with the configured partitions and retention."""

from __future__ import annotations

from pulse.common.kafka import create_topic
from pulse.config import Settings


def ensure_topic(settings: Settings) -> bool:
    """Create the stream's topic if missing (idempotent); True if it was created."""
    cfg = settings.stream
    return create_topic(settings.kafka, cfg.topic, partitions=cfg.partitions, retention_ms=cfg.retention_hours * 3_600_000)
