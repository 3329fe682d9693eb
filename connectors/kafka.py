"""Thin Kafka plumbing: client configs for each role and idempotent topic creation."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from connectors.errors import TopicError
from lakesync.config import KafkaSettings

# Idempotent producer: a retried send never duplicates or reorders within a partition.
PRODUCER_DEFAULTS = {
    "acks": "all",
    "enable.idempotence": "true",
    "compression.type": "zstd",
    "linger.ms": "20",
    "batch.num.messages": "10000",
    "queue.buffering.max.kbytes": "262144",
    "message.timeout.ms": "120000",
}

# Compacted change topics keep the latest event per key; tombstones expire after a day.
CHANGE_TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "delete.retention.ms": str(24 * 3600 * 1000),
    "min.compaction.lag.ms": str(3600 * 1000),
}

DEAD_LETTER_TOPIC_CONFIG = {"cleanup.policy": "delete", "retention.ms": str(14 * 24 * 3600 * 1000)}


def durability_config(settings: KafkaSettings) -> dict[str, str]:
    """What every topic lakesync creates needs so that an acknowledged message survives a broker.

    The stream records a change as published once Kafka acknowledged it (`acks=all`), and never
    sends it again; `acks=all` only waits for the in-sync replicas, so the topic must refuse
    writes when fewer than `min.insync.replicas` are in sync (default min(2, replication factor))
    and must never elect an out-of-sync replica leader (which would drop acknowledged messages).
    """
    replicas = settings.topic_replication_factor
    min_insync = settings.topic_min_insync_replicas or min(2, replicas)
    return {
        "min.insync.replicas": str(min(min_insync, replicas)),
        "unclean.leader.election.enable": str(settings.topic_unclean_leader_election).lower(),
    }


def producer_config(settings: KafkaSettings, **overrides: str) -> dict[str, str]:
    return {**settings.client_config(), **PRODUCER_DEFAULTS, **overrides}


def ensure_topics(
    settings: KafkaSettings,
    topics: Iterable[str],
    *,
    config: dict[str, str] | None = None,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet (configured partitions, `durability_config`); return
    the created ones. Existing topics are left as they are."""
    admin = AdminClient(settings.client_config())
    wanted = set(topics)
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as exc:
        raise TopicError(f"cannot list topics on {settings.bootstrap_servers}: {exc}") from exc
    finally:
        admin.poll(0)  # an admin client's log lines wait in its queue until served (lakesync.logs.KafkaLogBridge)
    missing = sorted(wanted - existing)
    if not missing:
        return []
    futures = admin.create_topics(
        [
            NewTopic(
                name,
                num_partitions=settings.topic_partitions,
                replication_factor=settings.topic_replication_factor,
                config={**durability_config(settings), **(config or {})},
            )
            for name in missing
        ],
        request_timeout=timeout_s,
    )
    for name, future in futures.items():
        try:
            future.result(timeout_s)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # created concurrently: fine
                raise TopicError(f"cannot create topic {name!r}: {exc}") from exc
    return missing
