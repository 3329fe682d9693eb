"""Streaming job tests' helpers: Delta source tables and reading topics back."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from changes.envelope import ChangeEvent, decode_event
from connectors.kafka_messages import consumed_headers, position
from lakesync.config import KafkaSettings


@dataclass(frozen=True)
class Received:
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    partition: int
    offset: int

    @property
    def event(self) -> ChangeEvent:
        return decode_event(self.key, self.value, list(self.headers.items()))


def read_topic(kafka: KafkaSettings, topic: str, *, timeout_s: float = 30.0) -> list[Received]:
    """Every message currently on `topic` (up to its end offsets), in partition/offset order."""
    consumer = Consumer(
        {
            **kafka.client_config(),
            "group.id": f"reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in metadata.partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        got: list[Received] = []
        deadline = time.monotonic() + timeout_s
        while sum(ends.values()) > len(got):
            assert time.monotonic() < deadline, f"read {len(got)} of {sum(ends.values())} messages"
            message = consumer.poll(1.0)
            if message is None or message.error():
                continue
            got.append(
                Received(message.key(), message.value(), dict(consumed_headers(message) or []), *position(message)[1:])
            )
        return sorted(got, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


def read_new(kafka: KafkaSettings, topic: str, before: list[Received]) -> list[Received]:
    """Messages on `topic` that were not in `before` (an earlier read_topic)."""
    seen = {(r.partition, r.offset) for r in before}
    return [r for r in read_topic(kafka, topic) if (r.partition, r.offset) not in seen]


def events(received: list[Received]) -> list[ChangeEvent]:
    """Full envelopes only (tombstones left out)."""
    return [r.event for r in received if r.value is not None]


def create_delta(spark: Any, path: str, rows: list[tuple[Any, ...]], schema: str, **properties: str) -> None:
    """A Delta table with the change data feed on (plus any other table properties)."""
    writer = spark.createDataFrame(rows, schema).write.format("delta").option("delta.enableChangeDataFeed", "true")
    for key, value in properties.items():
        writer = writer.option(key, value)
    writer.save(path)


def delta_sql(spark: Any, statement: str, path: str) -> None:
    """Run SQL with {t} standing for the Delta table at `path`."""
    spark.sql(statement.replace("{t}", f"delta.`{path}`"))


def replay(received: list[Received]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The table a version-guarded consumer would end with after applying `received` in order."""
    state: dict[tuple[Any, ...], tuple[int, dict[str, Any] | None]] = {}
    for message in received:
        event = message.event
        current = state.get(event.key)
        if current is None or event.version >= current[0]:
            state[event.key] = (event.version, event.after)
    return {key: after for key, (_, after) in state.items() if after is not None}
