"""Publishing one micro-batch from the executors: one idempotent producer per Spark partition.

Each planned row is one message on the table's topic (upsert, or delete followed by a
tombstone) or, for quarantined rows, one record on the dead-letter topic. Any delivery failure
fails the Spark task, hence the batch; foreachBatch then retries the whole batch after restart,
and the consumer's version guard makes the republished events harmless.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property, partial
from typing import Any

from pyspark.accumulators import AccumulatorParam

from changes.dead_letter import DeadLetter
from changes.envelope import ENVELOPE_VERSION, HEADER_ENVELOPE, HEADER_TABLE, tombstone_headers
from lakesync.errors import LakesyncError
from streaming.publisher.diff import ACTIONS, PUBLISHED

_FLUSH_TIMEOUT_S = 120.0


class PublishError(LakesyncError):
    """Kafka did not acknowledge every message of a batch."""


OffsetSpans = dict[int, tuple[int, int]]


class OffsetSpansParam(AccumulatorParam):  # type: ignore[type-arg]
    """Accumulates partition -> (first, last) offset written, for the batch's log line.

    Merging is min/max, so a retried task adding its spans twice changes nothing.
    """

    def zero(self, value: OffsetSpans) -> OffsetSpans:
        return {}

    def addInPlace(self, value1: OffsetSpans, value2: OffsetSpans) -> OffsetSpans:  # noqa: N802 (Spark's name)
        for partition, (first, last) in value2.items():
            known = value1.get(partition)
            value1[partition] = (first, last) if known is None else (min(known[0], first), max(known[1], last))
        return value1


def describe_spans(topic: str, spans: OffsetSpans) -> str:
    """`topic[partition:first-last,...]`, the consumer's format for its batch lines (batch.py)."""
    ranges = ",".join(f"{p}:{first}-{last}" for p, (first, last) in sorted(spans.items()))
    return f"{topic}[{ranges}]" if spans else ""


# What the publisher emits for the state snapshot's log: one row per published upsert/delete.
STATE_ROW_SCHEMA = "key string, row_hash long, version long, deleted boolean"


@dataclass(frozen=True)
class PartitionPublisher:
    """Publishes one table's planned rows from the executors (Spark mapInArrow).

    Input columns: action, key, value (binary), version, problem, row_hash, group_rows. Every row
    is counted by action (accumulators); upserts and deletes go to the table's topic (a delete
    followed by its tombstone), quarantined rows to the dead-letter topic. The output rows are
    the state snapshot's log entries for what was published; the task ends only after Kafka has
    acknowledged every message, and the log entries are committed only after every task ended.
    """

    producer_config: dict[str, str]
    topic: str
    dead_letter_topic: str
    table: str
    key_types: Sequence[str]
    # Which lakesync step set quarantined rows aside (the dead-letter stage header).
    stage: str = "stream"
    # Reconcile repairs: their tombstones say so, like their envelopes (batch_id -1).
    repair: bool = False

    def for_batch(self, counters: dict[str, Any]) -> Callable[[Iterable[Any]], Iterator[Any]]:
        """The partition function for one batch, counting into that batch's accumulators."""
        return partial(self._publish_partition, counters=counters)

    def _publish_partition(self, batches: Iterable[Any], counters: dict[str, Any]) -> Iterator[Any]:
        import pyarrow as pa
        from confluent_kafka import Producer

        producer = Producer(self.producer_config)
        failures: list[str] = []
        spans: OffsetSpans = {}

        def on_delivery(err: Any, msg: Any) -> None:
            if err is not None:
                failures.append(str(err))
            elif msg.topic() == self.topic:  # where each change landed, for the log line
                partition, offset = msg.partition(), msg.offset()
                known = spans.get(partition)
                spans[partition] = (offset, offset) if known is None else (min(known[0], offset), max(known[1], offset))

        counts = dict.fromkeys(ACTIONS, 0)
        group_rows = 0
        for batch in batches:
            c = batch.to_pydict()
            state: dict[str, list[Any]] = {"key": [], "row_hash": [], "version": [], "deleted": []}
            for action, key, value, version, problem, row_hash, rows in zip(
                c["action"],
                c["key"],
                c["value"],
                c["version"],
                c["problem"],
                c["row_hash"],
                c["group_rows"],
                strict=True,
            ):
                counts[action] += 1
                group_rows += rows
                if action in PUBLISHED:
                    for topic, k, v, headers in self._messages(action, key, value, version, problem):
                        _produce(producer, topic, k, v, headers, on_delivery)
                if action in ("upsert", "delete"):
                    state["key"].append(key)
                    state["row_hash"].append(row_hash)
                    state["version"].append(version)
                    state["deleted"].append(action == "delete")
            yield pa.RecordBatch.from_pydict(state, schema=_state_arrow_schema())
        remaining = producer.flush(_FLUSH_TIMEOUT_S)
        if remaining or failures:
            raise PublishError(
                f"table {self.table!r}: {remaining} message(s) unacknowledged, "
                f"{len(failures)} failed (first: {failures[:1]})"
            )
        for action, count in counts.items():
            counters[action].add(count)
        counters["group_rows"].add(group_rows)
        if "offsets" in counters:
            counters["offsets"].add(spans)

    def _messages(
        self, action: str, key: str | None, value: bytes, version: int, problem: str | None
    ) -> list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]]:
        encoded_key = key.encode() if key is not None else None
        if action == "upsert":
            return [(self.topic, encoded_key, value, self._headers)]
        if action == "delete":
            return [
                (self.topic, encoded_key, value, self._headers),
                (
                    self.topic,
                    encoded_key,
                    None,
                    tombstone_headers(self.table, version, self.key_types, repair=self.repair),
                ),
            ]
        reason = problem or "unknown"
        letter = DeadLetter(
            stage=self.stage,
            error_class=reason.split(":", 1)[0],
            message=f"row cannot be synced: {reason}",
            table=self.table,
            source_version=version,
        )
        return [(self.dead_letter_topic, encoded_key, value, letter.headers())]

    @cached_property
    def _headers(self) -> list[tuple[str, bytes]]:
        return [(HEADER_ENVELOPE, str(ENVELOPE_VERSION).encode()), (HEADER_TABLE, self.table.encode())]


def _state_arrow_schema() -> Any:
    import pyarrow as pa

    return pa.schema([("key", pa.string()), ("row_hash", pa.int64()), ("version", pa.int64()), ("deleted", pa.bool_())])


def _produce(
    producer: Any,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    headers: list[tuple[str, bytes]],
    on_delivery: Any,
) -> None:
    while True:
        try:
            producer.produce(topic, key=key, value=value, headers=headers, on_delivery=on_delivery)
            producer.poll(0)
            return
        except BufferError:
            # The local queue is full: let librdkafka drain it, then try again.
            producer.poll(0.5)
