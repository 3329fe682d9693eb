"""Read a consumer group's position from Kafka itself: offsets, ownership and record timestamps.

Everything comes from the brokers (committed offsets, log start/end, group membership), never
from a group member, so the lag stays visible when no consumer runs. One `OffsetReader.sample`
makes a handful of requests: topic metadata, the group's committed offsets, the group's
description, the earliest and latest offsets, and for each lagging partition the timestamp of
the record at its committed offset (cached until that offset moves).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence

from confluent_kafka import (
    OFFSET_INVALID,
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

from connectors.kafka_messages import topic_partition
from lakesync.config import KafkaSettings
from observability.errors import OffsetsUnavailableError
from observability.lag import GroupSample, PartitionSample

Partition = tuple[str, int]

# Ownership is unknown while a group moves partitions between members.
_REBALANCING = {ConsumerGroupState.PREPARING_REBALANCING, ConsumerGroupState.COMPLETING_REBALANCING}


class OffsetReader:
    """Samples groups' lag from the brokers; holds one admin client and one timestamp reader."""

    def __init__(self, settings: KafkaSettings, *, timeout_s: float = 10.0) -> None:
        self._settings = settings
        self._timeout_s = timeout_s
        self._admin = AdminClient(settings.client_config())
        self._timestamps = RecordTimestamps(settings, timeout_s=min(timeout_s, 5.0))

    def close(self) -> None:
        self._timestamps.close()

    def sample(self, group: str, topics: Sequence[str], *, dead_letter_topic: str | None = None) -> GroupSample:
        """The group's position on every partition of `topics`, now."""
        try:
            return self._sample(group, topics, dead_letter_topic)
        except KafkaException as exc:
            raise OffsetsUnavailableError(
                f"cannot read offsets of group {group!r} from {self._settings.bootstrap_servers}: {_describe(exc)}"
            ) from None

    def _sample(self, group: str, topics: Sequence[str], dead_letter_topic: str | None) -> GroupSample:
        partitions, missing = self._partitions(topics)
        members, owned = self._membership(group)
        committed = self._committed(group, partitions)
        starts = self._offsets(partitions, OffsetSpec.earliest())
        ends = self._offsets(partitions, OffsetSpec.latest())
        at = time.time()
        lagging = {tp: committed.get(tp, starts[tp]) for tp in partitions if ends[tp] > committed.get(tp, starts[tp])}
        stamps = self._timestamps.at_offsets(lagging)
        samples = {
            tp: PartitionSample(
                log_start=starts[tp],
                log_end=ends[tp],
                committed=committed.get(tp),
                oldest_unapplied_ts=stamps.get(tp),
                owned=None if owned is None else tp in owned,
            )
            for tp in partitions
        }
        return GroupSample(at, group, members, samples, tuple(missing), self._held(dead_letter_topic))

    def _partitions(self, topics: Sequence[str]) -> tuple[list[Partition], list[str]]:
        metadata = self._admin.list_topics(timeout=self._timeout_s)
        partitions: list[Partition] = []
        missing: list[str] = []
        for topic in sorted(set(topics)):
            found = metadata.topics.get(topic)
            if found is None or found.error is not None:
                missing.append(topic)
                continue
            partitions.extend((topic, p) for p in sorted(found.partitions))
        return partitions, missing

    def _membership(self, group: str) -> tuple[int, set[Partition] | None]:
        """How many members the group has and which partitions they own (None while rebalancing)."""
        future = self._admin.describe_consumer_groups([group], request_timeout=self._timeout_s)[group]
        description = future.result()
        if description.state in _REBALANCING:
            return len(description.members), None
        owned = {(tp.topic, tp.partition) for m in description.members for tp in m.assignment.topic_partitions}
        return len(description.members), owned

    def _committed(self, group: str, partitions: list[Partition]) -> dict[Partition, int]:
        if not partitions:
            return {}
        request = ConsumerGroupTopicPartitions(group, [TopicPartition(t, p) for t, p in partitions])
        future = self._admin.list_consumer_group_offsets([request], request_timeout=self._timeout_s)[group]
        result = future.result()
        return {
            (tp.topic, tp.partition): tp.offset
            for tp in result.topic_partitions
            if tp.error is None and tp.offset != OFFSET_INVALID and tp.offset >= 0
        }

    def _offsets(self, partitions: Iterable[Partition], spec: OffsetSpec) -> dict[Partition, int]:
        request = {TopicPartition(t, p): spec for t, p in partitions}
        if not request:
            return {}
        futures = self._admin.list_offsets(request, request_timeout=self._timeout_s)
        return {(tp.topic, tp.partition): future.result().offset for tp, future in futures.items()}

    def _held(self, topic: str | None) -> int | None:
        """Records the topic holds now (log end − log start, over its partitions); None if absent."""
        if topic is None:
            return None
        partitions, missing = self._partitions([topic])
        if missing:
            return None
        starts = self._offsets(partitions, OffsetSpec.earliest())
        ends = self._offsets(partitions, OffsetSpec.latest())
        return sum(max(ends[tp] - starts[tp], 0) for tp in partitions)


class RecordTimestamps:
    """Timestamps of the records at given offsets, read by an assign-only consumer (no group).

    A partition's committed offset changes once per applied batch, while the lag is sampled every
    few seconds: the timestamp is cached per (partition, offset), so a stopped consumer costs one
    read per partition, not one per sample.
    """

    def __init__(self, settings: KafkaSettings, *, timeout_s: float = 5.0) -> None:
        self._timeout_s = timeout_s
        self._cache: dict[Partition, tuple[int, float | None]] = {}
        self._consumer = Consumer(
            {
                **settings.client_config(),
                # Required by the client, never joined: assign() only, nothing is committed.
                "group.id": f"lakesync-lag-probe-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
                # One record per partition is wanted: keep the prefetch small.
                "queued.max.messages.kbytes": 1024,
                "fetch.wait.max.ms": 50,
            }
        )

    def close(self) -> None:
        self._consumer.close()

    def at_offsets(self, offsets: dict[Partition, int]) -> dict[Partition, float]:
        """Seconds since the epoch of the first record at or after each offset (missing if none)."""
        wanted = {tp: o for tp, o in offsets.items() if self._cache.get(tp, (None, None))[0] != o}
        if wanted:
            found = self._read(wanted)
            for tp, offset in wanted.items():
                self._cache[tp] = (offset, found.get(tp))
        for tp in list(self._cache):
            if tp not in offsets:
                del self._cache[tp]
        return {tp: ts for tp, (_, ts) in self._cache.items() if ts is not None and tp in offsets}

    def _read(self, offsets: dict[Partition, int]) -> dict[Partition, float]:
        consumer = self._consumer
        consumer.assign([TopicPartition(t, p, o) for (t, p), o in offsets.items()])
        found: dict[Partition, float] = {}
        done: set[Partition] = set()
        deadline = time.monotonic() + self._timeout_s
        try:
            while len(done) < len(offsets) and time.monotonic() < deadline:
                message = consumer.poll(0.2)
                if message is None:
                    continue
                tp = topic_partition(message)
                error = message.error()
                if error is not None and error.code() != KafkaError._PARTITION_EOF:
                    continue
                if error is None and tp not in done:
                    _kind, millis = message.timestamp()
                    if millis is not None and millis >= 0:
                        found[tp] = millis / 1000.0
                done.add(tp)  # a record, or the end of the log: either way this one is settled
                consumer.pause([TopicPartition(*tp)])
        finally:
            consumer.unassign()
        return found


def _describe(exc: KafkaException) -> str:
    error = exc.args[0] if exc.args else None
    return error.str() if isinstance(error, KafkaError) else str(exc)
