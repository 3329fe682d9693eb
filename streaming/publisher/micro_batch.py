"""The foreachBatch body for one table: map, collapse, then classify + publish + record, report.

One Spark job per micro-batch: the change feed is mapped, keyed and hashed, collapsed per key
(diff.py), and each partition of the result is classified against the stream's state, published
and recorded by the partition publisher on the executors (partition_publisher.py). The driver
only sums the tasks' tallies. Every input row is accounted for in the report and the one log
line per batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lakesync.config import TableMapping
from lakesync.logs import correlation, get_logger
from streaming.publisher import diff
from streaming.publisher.envelope_spark import envelope_json
from streaming.publisher.mapping import COMMIT_TIMESTAMP, COMMIT_VERSION, CompiledMapping
from streaming.publisher.partition_publisher import (
    TALLY_SCHEMA,
    OffsetSpans,
    PartitionPublisher,
    Tally,
    describe_spans,
    sum_tallies,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import StructType

log = get_logger(__name__)


@dataclass
class BatchReport:
    """What one micro-batch did; every input row lands in exactly one of the counters."""

    table: str
    batch_id: int
    rows_in: int = 0
    collapsed: int = 0
    upserts: int = 0
    deletes: int = 0
    noops: int = 0
    stale: int = 0
    quarantined: int = 0
    min_version: int | None = None
    max_version: int | None = None
    max_commit_ts: float | None = None
    duration_s: float = 0.0
    # Partition -> (first, last) offset written to the table's topic: the consumer logs the same.
    offsets: OffsetSpans = field(default_factory=dict)
    # Seconds the batch's tasks spent per phase (partition_publisher.PHASES), summed over tasks.
    profile: dict[str, float] = field(default_factory=dict)

    @property
    def published(self) -> int:
        return self.upserts + self.deletes

    @classmethod
    def from_tally(cls, table: str, batch_id: int, tally: Tally) -> BatchReport:
        actions = tally.actions
        survivors = sum(actions.values())
        return cls(
            table,
            batch_id,
            rows_in=tally.group_rows,
            collapsed=tally.group_rows - survivors,
            upserts=actions["upsert"],
            deletes=actions["delete"],
            noops=actions["noop"],
            stale=actions["stale"],
            quarantined=actions["quarantine"],
            min_version=tally.min_version,
            max_version=tally.max_version,
            max_commit_ts=tally.max_commit_micros / 1e6 if tally.max_commit_micros is not None else None,
            offsets=dict(tally.spans),
            profile=dict(tally.seconds),
        )


@dataclass
class TablePipeline:
    """Callable handed to foreachBatch for one table mapping."""

    table: TableMapping
    compiled: CompiledMapping
    target_schema: StructType
    publisher: PartitionPublisher
    on_report: list[Callable[[BatchReport], None]] = field(default_factory=list)

    def __call__(self, feed: DataFrame, batch_id: int) -> None:
        with correlation(table=self.table.name, batch_id=batch_id):
            started = time.monotonic()
            report = BatchReport.from_tally(self.table.name, batch_id, self._run(feed, batch_id))
            report.duration_s = time.monotonic() - started
            log.info(
                "batch published",
                rows_in=report.rows_in,
                collapsed=report.collapsed,
                upserts=report.upserts,
                deletes=report.deletes,
                noops=report.noops,
                stale=report.stale,
                quarantined=report.quarantined,
                min_version=report.min_version,
                max_version=report.max_version,
                duration_s=round(report.duration_s, 3),
                **{phase: round(seconds, 3) for phase, seconds in report.profile.items()},
                topic=self.table.topic_name,
                offsets=describe_spans(self.table.topic_name, report.offsets),
            )
            for listener in self.on_report:
                listener(report)

    def _run(self, feed: DataFrame, batch_id: int) -> Tally:
        """One job: the tasks classify, publish and record; the driver sums their tallies."""
        keyed = diff.keyed(self.compiled.apply(feed), self.target_schema, self.table.key_columns)
        planned = diff.publisher_input(diff.collapse(keyed), self._envelope(batch_id))
        return sum_tallies(planned.mapInArrow(self.publisher, TALLY_SCHEMA).collect())

    def _envelope(self, batch_id: int) -> Column:
        from pyspark.sql import functions as F

        return envelope_json(
            table=self.table.name,
            source=self.table.source,
            schema=self.target_schema,
            key_columns=self.table.key_columns,
            op=diff.envelope_op(),
            version=F.col(COMMIT_VERSION),
            commit_ts=F.col(COMMIT_TIMESTAMP),
            row_hash=F.col(diff.PLAN_HASH),
            batch_id=batch_id,
        )
