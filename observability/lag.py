"""Burrow-style lag evaluation: one status per partition and per consumer group, from a window.

Pure logic over plain data. Samples come from Kafka (observability/kafka_offsets.py) and are judged
here, the same way for `lakesync lag`, the consumer service's `/lag` and the lag metrics.

A sample holds, per partition, the log start and end offsets, the group's committed offset
(`None` if it never committed there), the timestamp of the oldest record not yet applied (the
one at the committed offset) and whether a group member owns the partition. From it:

- offset lag = log end − committed (the log start when nothing is committed), clamped at 0:
  the offsets come from separate requests, so a commit landing between them can overshoot;
- time lag = sample time − timestamp of the oldest unapplied record, 0 when the offset lag is 0.

Status rules, per partition, over the samples of the last `window_s` seconds; the first that
matches wins:

    ERR    the committed offset is past the log end (topic recreated or truncated), before the
           log start (unapplied records were deleted by retention), or went backwards within
           the window (the group was rewound)
    OK     the offset lag was 0 in at least one sample: a consumer that catches up now and then
           is healthy whatever its peaks (Burrow's first rule; it also keeps a record that just
           arrived from looking like a stopped consumer)
    STOP   no member of the group owns the partition (no consumer running, or none consuming
           this topic): nothing will commit (Burrow: no commits over the window)
    STALL  a member owns it, but the committed offset did not move over the window (at least two
           samples): stuck, paused while PostgreSQL is down, or retrying one batch
    WARN   the committed offset moves, but the lag never shrank from one sample to the next and
           grew overall, over at least three samples: the consumer is falling behind
    OK     otherwise: behind, and catching up

A group's status is its most severe partition's (OK < WARN < STALL < STOP < ERR); a topic of
the group that does not exist makes it ERR. Severity values are what the status gauges export.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

TopicPartition = tuple[str, int]

# Fewest samples that can show a trend (two intervals) or a standstill (one interval).
TREND_SAMPLES = 3
STANDSTILL_SAMPLES = 2


class Status(IntEnum):
    """Lag status, ordered by severity; the value is what the status gauges export."""

    OK = 0
    WARN = 1
    STALL = 2
    STOP = 3
    ERR = 4


@dataclass(frozen=True)
class PartitionSample:
    """One look at one partition of a group's topic."""

    log_start: int
    log_end: int
    committed: int | None
    # CreateTime of the record at the committed offset, in seconds; None when not read.
    oldest_unapplied_ts: float | None = None
    # Whether a group member has the partition assigned; None while the group rebalances.
    owned: bool | None = None

    @property
    def position(self) -> int:
        """Where the group resumes: its committed offset, else the log start (auto.offset.reset=earliest)."""
        return self.committed if self.committed is not None else self.log_start

    @property
    def offset_lag(self) -> int:
        return max(self.log_end - self.position, 0)

    def time_lag_s(self, at: float) -> float | None:
        """Seconds the oldest unapplied record has waited; 0 with no lag, None when unknown."""
        if self.offset_lag == 0:
            return 0.0
        if self.oldest_unapplied_ts is None:
            return None
        return max(at - self.oldest_unapplied_ts, 0.0)


@dataclass(frozen=True)
class GroupSample:
    """Every partition of a group's topics at one instant (unix seconds)."""

    at: float
    group: str
    members: int
    partitions: Mapping[TopicPartition, PartitionSample]
    missing_topics: tuple[str, ...] = ()
    # Records held by the dead-letter topic (log end − log start); None when not read.
    dead_letter_records: int | None = None


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    table: str | None
    status: Status
    reason: str
    offset_lag: int
    time_lag_s: float | None
    committed: int | None
    log_end: int

    def to_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "table": self.table,
            "status": self.status.name,
            "reason": self.reason,
            "offset_lag": self.offset_lag,
            "time_lag_s": _round(self.time_lag_s),
            "committed_offset": self.committed,
            "log_end_offset": self.log_end,
        }


@dataclass(frozen=True)
class TableLag:
    """A table's partitions rolled up: summed offset lag, the oldest time lag, the worst status."""

    table: str
    topic: str
    status: Status
    offset_lag: int
    time_lag_s: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "topic": self.topic,
            "status": self.status.name,
            "offset_lag": self.offset_lag,
            "time_lag_s": _round(self.time_lag_s),
        }


@dataclass(frozen=True)
class GroupLag:
    group: str
    status: Status
    reason: str
    at: float
    members: int
    window_s: float
    samples: int
    partitions: tuple[PartitionLag, ...]
    tables: tuple[TableLag, ...]
    dead_letter_records: int | None = None

    @property
    def offset_lag(self) -> int:
        return sum(p.offset_lag for p in self.partitions)

    @property
    def time_lag_s(self) -> float | None:
        return _max_known(p.time_lag_s for p in self.partitions)

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "status": self.status.name,
            "reason": self.reason,
            "evaluated_at": self.at,
            "members": self.members,
            "window_s": self.window_s,
            "samples": self.samples,
            "offset_lag": self.offset_lag,
            "time_lag_s": _round(self.time_lag_s),
            "dead_letter_records": self.dead_letter_records,
            "tables": [t.to_json() for t in self.tables],
            "partitions": [p.to_json() for p in self.partitions],
        }


def evaluate_partition(samples: Sequence[PartitionSample]) -> tuple[Status, str]:
    """The status of one partition from its samples in the window, oldest first (not empty)."""
    latest = samples[-1]
    committed = [s.committed for s in samples if s.committed is not None]
    if latest.committed is not None and latest.committed > latest.log_end:
        return Status.ERR, f"committed offset {latest.committed} is past the log end {latest.log_end}"
    if latest.committed is not None and latest.committed < latest.log_start:
        return Status.ERR, (
            f"committed offset {latest.committed} is before the log start {latest.log_start}: "
            "unapplied records were deleted"
        )
    if any(later < earlier for earlier, later in itertools.pairwise(committed)):
        return Status.ERR, "committed offset went backwards (group rewound)"
    lags = [s.offset_lag for s in samples]
    if min(lags) == 0:
        return Status.OK, "caught up" if lags[-1] == 0 else "caught up within the window"
    if latest.owned is False:
        return Status.STOP, "no consumer owns the partition"
    positions = [s.position for s in samples]
    if len(samples) >= STANDSTILL_SAMPLES and positions[0] == positions[-1]:
        return Status.STALL, f"committed offset {positions[-1]} did not move over {len(samples)} samples"
    growing = all(later >= earlier for earlier, later in itertools.pairwise(lags)) and lags[-1] > lags[0]
    if len(samples) >= TREND_SAMPLES and growing:
        return Status.WARN, f"lag grew from {lags[0]} to {lags[-1]} while consuming"
    return Status.OK, "behind, catching up"


class LagWindow:
    """The recent samples of one group, judged over the last `window_s`, kept for `history_s`."""

    def __init__(self, *, window_s: float, history_s: float, tables: Mapping[str, str] | None = None) -> None:
        if window_s < 0:
            raise ValueError("window_s must be >= 0")
        if history_s < window_s:
            raise ValueError("history_s must be greater or equal than window_s")
        self.window_s = window_s
        self.history_s = history_s
        self.tables = dict(tables or {})  # topic -> table mapping name
        self._samples: deque[GroupSample] = deque()

    def add(self, sample: GroupSample) -> None:
        self._samples.append(sample)
        while self._samples and self._samples[0].at < sample.at - self.history_s:
            self._samples.popleft()

    @property
    def samples(self) -> list[GroupSample]:
        return list(self._samples)

    def in_window(self) -> list[GroupSample]:
        if not self._samples:
            return []
        since = self._samples[-1].at - self.window_s
        return [s for s in self._samples if s.at >= since]

    def evaluate(self) -> GroupLag | None:
        """The group's status now (None before the first sample)."""
        window = self.in_window()
        return evaluate_group(window, self.window_s, self.tables) if window else None

    def history(self) -> dict[str, Any]:
        """Every kept sample as aligned series, for the built-in page (see `history_json`)."""
        return history_json(self.samples, self.tables)


def evaluate_group(window: Sequence[GroupSample], window_s: float, tables: Mapping[str, str]) -> GroupLag:
    """Judge each partition of the newest sample over `window` (oldest first), then the group."""
    latest = window[-1]
    partitions = []
    for (topic, partition), current in sorted(latest.partitions.items()):
        series = [s.partitions[(topic, partition)] for s in window if (topic, partition) in s.partitions]
        status, reason = evaluate_partition(series)
        partitions.append(
            PartitionLag(
                topic,
                partition,
                tables.get(topic),
                status,
                reason,
                current.offset_lag,
                current.time_lag_s(latest.at),
                current.committed,
                current.log_end,
            )
        )
    status, reason = _group_status(latest, partitions)
    return GroupLag(
        latest.group,
        status,
        reason,
        latest.at,
        latest.members,
        window_s,
        len(window),
        tuple(partitions),
        _table_rollup(partitions),
        latest.dead_letter_records,
    )


def history_json(samples: Sequence[GroupSample], tables: Mapping[str, str]) -> dict[str, Any]:
    """Samples as series aligned on `times` (null where a partition was not seen).

    Per table: summed offset lag, the oldest time lag and the apply rate (committed offsets
    advanced per second since the previous sample); per partition: offset and time lag.
    """
    keys = sorted({tp for s in samples for tp in s.partitions})
    per_partition: dict[str, dict[str, Any]] = {
        f"{topic}:{partition}": {
            "topic": topic,
            "partition": partition,
            "table": tables.get(topic),
            "offset_lag": [],
            "time_lag_s": [],
        }
        for topic, partition in keys
    }
    topics = sorted({topic for topic, _ in keys})
    per_table: dict[str, dict[str, Any]] = {
        topic: {"table": tables.get(topic, topic), "topic": topic, "offset_lag": [], "time_lag_s": [], "apply_rate": []}
        for topic in topics
    }
    previous: GroupSample | None = None
    for sample in samples:
        for topic, partition in keys:
            found = sample.partitions.get((topic, partition))
            series = per_partition[f"{topic}:{partition}"]
            series["offset_lag"].append(found.offset_lag if found else None)
            series["time_lag_s"].append(_round(found.time_lag_s(sample.at)) if found else None)
        for topic in topics:
            _append_table_point(per_table[topic], topic, sample, previous)
        previous = sample
    return {
        "group": samples[-1].group if samples else None,
        "times": [s.at for s in samples],
        "dead_letter_records": [s.dead_letter_records for s in samples],
        "tables": list(per_table.values()),
        "partitions": list(per_partition.values()),
    }


def _append_table_point(series: dict[str, Any], topic: str, sample: GroupSample, previous: GroupSample | None) -> None:
    mine = [(p, s) for (t, p), s in sample.partitions.items() if t == topic]
    series["offset_lag"].append(sum(s.offset_lag for _, s in mine) if mine else None)
    series["time_lag_s"].append(_round(_max_known(s.time_lag_s(sample.at) for _, s in mine)) if mine else None)
    rate = None
    if previous is not None and mine and sample.at > previous.at:
        before = {p: s.position for (t, p), s in previous.partitions.items() if t == topic}
        # Only partitions seen both times, and never negative (a rewind is not a rate).
        advanced = sum(max(s.position - before[p], 0) for p, s in mine if p in before)
        rate = round(advanced / (sample.at - previous.at), 3)
    series["apply_rate"].append(rate)


def _group_status(latest: GroupSample, partitions: Sequence[PartitionLag]) -> tuple[Status, str]:
    if latest.missing_topics:
        return Status.ERR, f"topic(s) do not exist: {', '.join(latest.missing_topics)}"
    if not partitions:
        return Status.OK, "no partitions"
    worst = max(partitions, key=lambda p: p.status)
    if worst.status is Status.OK:
        return Status.OK, "every partition OK"
    count = sum(1 for p in partitions if p.status is worst.status)
    return (
        worst.status,
        f"{count} partition(s) {worst.status.name}, e.g. {worst.topic}:{worst.partition}: {worst.reason}",
    )


def _table_rollup(partitions: Sequence[PartitionLag]) -> tuple[TableLag, ...]:
    by_topic: dict[str, list[PartitionLag]] = {}
    for p in partitions:
        by_topic.setdefault(p.topic, []).append(p)
    return tuple(
        TableLag(
            table=parts[0].table or topic,
            topic=topic,
            status=max(p.status for p in parts),
            offset_lag=sum(p.offset_lag for p in parts),
            time_lag_s=_max_known(p.time_lag_s for p in parts),
        )
        for topic, parts in sorted(by_topic.items())
    )


def _max_known(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


__all__ = [
    "GroupLag",
    "GroupSample",
    "LagWindow",
    "PartitionLag",
    "PartitionSample",
    "Status",
    "TableLag",
    "evaluate_group",
    "evaluate_partition",
    "history_json",
]
