"""The embedded Kafka broker is a real broker: topics, partitions, produce and consume."""

from __future__ import annotations

from collections import defaultdict

import pytest
from confluent_kafka import Consumer, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from connectors.kafka_messages import topic_partition
from lakesync.config import LakesyncSettings

pytestmark = pytest.mark.integration


def test_produce_consume_round_trip_keeps_keys_on_one_partition(settings: LakesyncSettings, unique_name: str) -> None:
    """Every message comes back, and all messages of one key land on the same partition."""
    client = settings.kafka.client_config()
    admin = AdminClient(client)
    admin.create_topics([NewTopic(unique_name, num_partitions=3, replication_factor=1)])[unique_name].result(30)
    assert len(admin.list_topics(unique_name, timeout=10).topics[unique_name].partitions) == 3

    producer = Producer({**client, "enable.idempotence": True, "acks": "all"})
    sent = [(f"key-{i % 7}", f"value-{i}") for i in range(70)]
    for key, value in sent:
        producer.produce(unique_name, key=key, value=value)
    assert producer.flush(30) == 0

    consumer = Consumer(
        {**client, "group.id": unique_name, "auto.offset.reset": "earliest", "enable.auto.commit": False}
    )
    consumer.subscribe([unique_name])
    received: list[Message] = []
    try:
        while len(received) < len(sent):
            message = consumer.poll(10)
            assert message is not None, f"only {len(received)} of {len(sent)} messages came back"
            assert message.error() is None, message.error()
            received.append(message)
    finally:
        consumer.close()

    assert sorted(bytes(m.value() or b"").decode() for m in received) == sorted(v for _, v in sent)
    partitions_of_key: dict[str, set[int]] = defaultdict(set)
    for message in received:
        topic_key, partition = bytes(message.key() or b"").decode(), topic_partition(message)[1]
        partitions_of_key[topic_key].add(partition)
    assert all(len(parts) == 1 for parts in partitions_of_key.values()), partitions_of_key
    # Seven keys over three partitions: more than one partition is really in use.
    assert len({p for parts in partitions_of_key.values() for p in parts}) > 1


def test_ensure_topics_creates_compacted_topics_once(settings: LakesyncSettings, unique_name: str) -> None:
    """Missing topics are created with the configured partitions and config; a rerun is a no-op."""
    from confluent_kafka.admin import ConfigResource, ConfigSource

    from connectors.kafka import CHANGE_TOPIC_CONFIG, ensure_topics

    assert ensure_topics(settings.kafka, [unique_name], config=CHANGE_TOPIC_CONFIG) == [unique_name]
    assert ensure_topics(settings.kafka, [unique_name], config=CHANGE_TOPIC_CONFIG) == []
    admin = AdminClient(settings.kafka.client_config())
    topic = admin.list_topics(unique_name, timeout=10).topics[unique_name]
    assert len(topic.partitions) == settings.kafka.topic_partitions
    resource = ConfigResource(ConfigResource.Type.TOPIC, unique_name)
    configs = admin.describe_configs([resource])[resource].result(10)
    assert configs["cleanup.policy"].value == "compact"
    # Durability does not rest on the broker's defaults (min(2, replication factor) = 1 here).
    assert configs["min.insync.replicas"].value == "1"
    assert configs["min.insync.replicas"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["unclean.leader.election.enable"].value == "false"
