"""Prometheus gauges of a consumer group's lag, as `LagMonitor` last judged it.

Labels are the group, topic and partition only (a bounded set). The values come from the
brokers, not from a member's in-memory position, so they do not vanish while the group has no
members (export them with `lakesync lag --serve` to see that case), and they do not depend on
which partitions this process owns: nothing goes stale on a rebalance. Label sets of partitions
that leave the evaluation (a topic deleted, a table dropped from the config) are removed.

Every consumer instance exports the same series for its group; aggregate with `max by (group,
topic, partition)` (the dashboards and alert rules do).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from observability.lag import GroupLag

_PARTITION = ["group", "topic", "partition"]

OFFSET_LAG = Gauge(
    "lakesync_consumer_group_lag",
    "Records not yet applied: log end offset minus the group's committed offset (never negative).",
    _PARTITION,
)
TIME_LAG = Gauge(
    "lakesync_consumer_group_lag_seconds",
    "Age of the oldest record not yet applied (0 when caught up).",
    _PARTITION,
)
COMMITTED_OFFSET = Gauge(
    "lakesync_consumer_group_committed_offset", "The group's committed offset (next record to apply).", _PARTITION
)
LOG_END_OFFSET = Gauge("lakesync_consumer_group_log_end_offset", "The partition's log end offset.", _PARTITION)
PARTITION_STATUS = Gauge(
    "lakesync_consumer_group_partition_status",
    "Lag status of the partition: 0 OK, 1 WARN, 2 STALL, 3 STOP, 4 ERR.",
    _PARTITION,
)
GROUP_STATUS = Gauge(
    "lakesync_consumer_group_status", "Lag status of the group: 0 OK, 1 WARN, 2 STALL, 3 STOP, 4 ERR.", ["group"]
)
GROUP_MEMBERS = Gauge(
    "lakesync_consumer_group_members", "Members of the consumer group (0: nobody consumes).", ["group"]
)
DEAD_LETTER_RECORDS = Gauge(
    "lakesync_dead_letter_topic_records", "Records held by the dead-letter topic (log end minus log start).", ["topic"]
)
SAMPLE_ERRORS = Counter(
    "lakesync_lag_sample_errors", "Lag samples that failed because Kafka did not answer.", ["group"]
)

_PER_PARTITION = (OFFSET_LAG, TIME_LAG, COMMITTED_OFFSET, LOG_END_OFFSET, PARTITION_STATUS)


class LagExporter:
    """Sets the gauges from each evaluation and removes the series of departed partitions."""

    def __init__(self, dead_letter_topic: str | None = None) -> None:
        self._dead_letter_topic = dead_letter_topic
        self._exported: set[tuple[str, str, str]] = set()

    def export(self, lag: GroupLag) -> None:
        current: set[tuple[str, str, str]] = set()
        for p in lag.partitions:
            labels = (lag.group, p.topic, str(p.partition))
            current.add(labels)
            OFFSET_LAG.labels(*labels).set(p.offset_lag)
            if p.time_lag_s is not None:
                TIME_LAG.labels(*labels).set(p.time_lag_s)
            if p.committed is not None:
                COMMITTED_OFFSET.labels(*labels).set(p.committed)
            LOG_END_OFFSET.labels(*labels).set(p.log_end)
            PARTITION_STATUS.labels(*labels).set(int(p.status))
        for labels in self._exported - current:
            self._remove(labels)
        self._exported = current
        GROUP_STATUS.labels(lag.group).set(int(lag.status))
        GROUP_MEMBERS.labels(lag.group).set(lag.members)
        if self._dead_letter_topic is not None and lag.dead_letter_records is not None:
            DEAD_LETTER_RECORDS.labels(self._dead_letter_topic).set(lag.dead_letter_records)

    def sample_failed(self, group: str) -> None:
        SAMPLE_ERRORS.labels(group).inc()

    @staticmethod
    def _remove(labels: tuple[str, str, str]) -> None:
        for gauge in _PER_PARTITION:
            try:
                gauge.remove(*labels)
            except KeyError:  # never set (e.g. no timestamp was ever read)
                pass
