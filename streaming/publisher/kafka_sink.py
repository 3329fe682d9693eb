"""Publishing one micro-batch from the executors: one idempotent producer per Spark partition.

Each planned row is one message on the table's topic (upsert, or delete followed by a
tombstone) or, for quarantined rows, one record on the dead-letter topic. Any delivery failure
fails the Spark task, hence the batch; foreachBatch then retries the whole batch after restart,
and the consumer's version guard makes the republished events harmless.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from lakesync.changes.dead_letter import DeadLetter
from lakesync.changes.envelope import HEADER_ENVELOPE, HEADER_TABLE, ENVELOPE_VERSION, tombstone_headers
from lakesync.errors import LakesyncError

_FLUSH_TIMEOUT_S = 120.0


class PublishError(LakesyncError):
    """Kafka did not acknowledge every message of a batch."""


@dataclass(frozen=True)
class PartitionPublisher:
    """The picklable function Spark runs on each partition of a batch's plan."""

    producer_config: dict[str, str]
    topic: str
    dead_letter_topic: str
    table: str
    key_types: Sequence[str]

    def __call__(self, rows: Iterable[Any]) -> None:
        from confluent_kafka import Producer

        producer = Producer(self.producer_config)
        failures: list[str] = []

        def on_delivery(err: Any, _msg: Any) -> None:
            if err is not None:
                failures.append(str(err))

        headers = [(HEADER_ENVELOPE, str(ENVELOPE_VERSION).encode()), (HEADER_TABLE, self.table.encode())]
        for row in rows:
            for topic, key, value, extra in self._messages(row, headers):
                _produce(producer, topic, key, value, extra, on_delivery)
        remaining = producer.flush(_FLUSH_TIMEOUT_S)
        if remaining or failures:
            raise PublishError(
                f"table {self.table!r}: {remaining} message(s) unacknowledged, "
                f"{len(failures)} failed (first: {failures[:1]})"
            )

    def _messages(self, row: Any, headers: list[tuple[str, bytes]]) -> list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]]:
        key = row.key.encode() if row.key is not None else None
        if row.action == "upsert":
            return [(self.topic, key, row.value.encode(), headers)]
        if row.action == "delete":
            return [
                (self.topic, key, row.value.encode(), headers),
                (self.topic, key, None, tombstone_headers(self.table, row.version, self.key_types)),
            ]
        reason = row.problem or "unknown"
        letter = DeadLetter(
            stage="stream",
            error_class=reason.split(":", 1)[0],
            message=f"row cannot be synced: {reason}",
            table=self.table,
            source_version=row.version,
        )
        return [(self.dead_letter_topic, key, row.value.encode(), letter.headers())]


def _produce(producer: Any, topic: str, key: bytes | None, value: bytes | None,
             headers: list[tuple[str, bytes]], on_delivery: Any) -> None:
    while True:
        try:
            producer.produce(topic, key=key, value=value, headers=headers, on_delivery=on_delivery)
            producer.poll(0)
            return
        except BufferError:
            # The local queue is full: let librdkafka drain it, then try again.
            producer.poll(0.5)
