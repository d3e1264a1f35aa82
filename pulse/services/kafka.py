"""Kafka: Apache Kafka 4 (KRaft, one node that is broker and controller) from Maven-resolved jars.

``java -cp .jvm/kafka/* kafka.Kafka server.properties`` as a ManagedProcess: data under
``$PULSE_HOME/data/kafka``, storage formatted once with a cluster id kept there, clean shutdown on
SIGTERM. Every listener is on loopback and needs SASL: clients log in as ``pulse``, the broker
and controller as ``broker`` (PLAIN over SASL_PLAINTEXT; see the README for SASL_SSL). The
properties file holds the passwords and is written 0600 at every start from Pulse's config, so the
config stays the truth. An external cluster (MSK, Confluent, Redpanda) by PULSE_KAFKA_BOOTSTRAP.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from pulse.common.files import write_private
from pulse.common.kafka import LOG, create_topic
from pulse.common.kafka import admin as kafka_admin
from pulse.jvm import KAFKA
from pulse.services.base import ManagedProcess, ServiceError, port_open

INTERNAL_TOPIC_PREFIX = "__"


def _jaas(login: str, password: str, users: dict[str, str]) -> str:
    entries = " ".join(f'user_{name}="{pw}"' for name, pw in users.items())
    return f'org.apache.kafka.common.security.plain.PlainLoginModule required username="{login}" password="{password}" {entries};'


class Kafka(ManagedProcess):
    name = "kafka"
    start_timeout = 90.0

    @property
    def managed(self) -> bool:
        return self.settings.kafka.managed

    @property
    def port(self) -> int:
        return self.settings.kafka.port

    @property
    def endpoint(self) -> str:
        return f"{self.settings.kafka.security_protocol.lower()}://{self.settings.kafka.servers}"

    @property
    def properties_file(self) -> Path:
        return self.settings.run_dir / "kafka.properties"

    @property
    def log_dirs(self) -> Path:
        return self.data_dir / "log"

    def server_properties(self) -> dict[str, str]:
        cfg = self.settings.kafka
        users = {"broker": cfg.broker_password, cfg.user: cfg.password}
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{cfg.controller_port}",
            "listeners": f"SASL_PLAINTEXT://127.0.0.1:{cfg.port},CONTROLLER://127.0.0.1:{cfg.controller_port}",
            "advertised.listeners": f"SASL_PLAINTEXT://127.0.0.1:{cfg.port}",
            "inter.broker.listener.name": "SASL_PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
            "sasl.enabled.mechanisms": "PLAIN",
            "sasl.mechanism.inter.broker.protocol": "PLAIN",
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": _jaas("broker", cfg.broker_password, users),
            "listener.name.controller.plain.sasl.jaas.config": _jaas(
                "broker", cfg.broker_password, {"broker": cfg.broker_password}
            ),
            "log.dirs": str(self.log_dirs),
            "num.partitions": "3",
            "default.replication.factor": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "5",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "auto.create.topics.enable": "false",  # topics are created by Pulse with their settings
            "group.initial.rebalance.delay.ms": "0",
            "log.retention.hours": "168",
            "log.segment.bytes": str(256 * 2**20),
        }

    def environment(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}  # no secrets for the JVM

    def _java(self, main: str, *args: str) -> list[str]:
        java = shutil.which("java")
        if not java:
            raise ServiceError("java not found: apt-get install openjdk-17-jre-headless")
        log4j = self.settings.run_dir / "kafka-log4j2.properties"
        return [
            java,
            "-Xms256m",
            f"-Xmx{self.settings.kafka.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            "-Djava.net.preferIPv4Stack=true",  # plain IPv4 sockets on 127.0.0.1
            f"-Dlog4j2.configurationFile=file:{log4j}",
            f"-Dkafka.logs.dir={self.data_dir / 'server-logs'}",
            "-cp",
            KAFKA.classpath(),
            main,
            *args,
        ]

    def prepare(self) -> None:
        self.data_dir.chmod(0o700)
        props = "".join(f"{k}={v}\n" for k, v in self.server_properties().items())
        write_private(self.properties_file, props)  # holds the SASL passwords
        write_private(
            self.settings.run_dir / "kafka-log4j2.properties",
            "rootLogger.level = INFO\nrootLogger.appenderRef.stdout.ref = STDOUT\n"
            "appender.stdout.type = Console\nappender.stdout.name = STDOUT\n"
            "appender.stdout.layout.type = PatternLayout\nappender.stdout.layout.pattern = [%d] %p %m (%c)%n\n"
            "logger.kafka.name = kafka\nlogger.kafka.level = INFO\n"
            "logger.state.name = state.change.logger\nlogger.state.level = WARN\n",
        )
        if (self.log_dirs / "meta.properties").exists():
            return
        # format the storage once; the cluster id is kept so a restart finds its own data
        id_file = self.data_dir / "cluster.id"
        if not id_file.exists():
            id_file.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))
        cluster_id = id_file.read_text().strip()
        done = subprocess.run(
            self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.properties_file), "--standalone"),
            capture_output=True,
            text=True,
            env=self.environment(),
        )
        if done.returncode:
            raise ServiceError(f"kafka storage format failed: {done.stdout[-500:]}{done.stderr[-1500:]}")

    def command(self) -> list[str]:
        return self._java("kafka.Kafka", str(self.properties_file))

    def admin(self, timeout: float = 5.0):
        return kafka_admin(self.settings.kafka, timeout)

    def healthy(self) -> tuple[bool, str]:
        cfg = self.settings.kafka
        if self.managed and not port_open("127.0.0.1", cfg.port):
            return False, "port closed"
        try:
            meta = self.admin().list_topics(timeout=5)
        except Exception as exc:  # KafkaException: auth failure, no broker
            return False, str(exc)[:120]
        topics = sorted(t for t in meta.topics if not t.startswith(INTERNAL_TOPIC_PREFIX))
        return True, f"Kafka · {len(meta.brokers)} broker(s) · topics: {', '.join(topics) or '(none)'}{self.lag_summary()}"

    def lag_summary(self) -> str:
        """Consumer groups and their lag (messages not yet consumed), for `pulse status`."""
        try:
            from confluent_kafka import Consumer, TopicPartition

            admin = self.admin()
            groups = [g.group_id for g in admin.list_consumer_groups(request_timeout=5).result(timeout=10).valid]
            if not groups:
                return ""
            parts = []
            probe = Consumer(
                {**self.settings.kafka.client_config(), "group.id": "pulse-status-probe", "enable.auto.commit": False},
                logger=LOG,
            )
            try:
                from confluent_kafka import ConsumerGroupTopicPartitions

                for group in sorted(groups):
                    offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=10)
                    lag = 0
                    for tp in offsets.topic_partitions:
                        _, high = probe.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=5)
                        lag += max(0, high - max(tp.offset, 0))
                    parts.append(f"{group} lag {lag:,}")
            finally:
                probe.close()
            return " · groups: " + ", ".join(parts)
        except Exception as exc:  # status reports, it does not fail
            return f" · groups: ({type(exc).__name__})"

    def create_topic(self, name: str, partitions: int = 3, retention_ms: int | None = None) -> bool:
        """Create a topic if it is missing (idempotent). Returns True if it was created."""
        return create_topic(self.settings.kafka, name, partitions, retention_ms)
