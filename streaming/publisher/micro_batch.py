"""The foreachBatch body for one table: map, plan, publish, update the snapshot, report.

Order matters for crash safety (see state_snapshot.py): publish first, merge the snapshot
second. Every row of the batch is accounted for in the report and the one log line per batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lakesync.config import TableMapping
from lakesync.logs import correlation, get_logger
from lakesync.streaming.publisher.diff import ACTION, GROUP_ROWS, PLAN_HASH, PLAN_KEY, PUBLISHED, plan
from lakesync.streaming.publisher.envelope_spark import envelope_json
from lakesync.streaming.publisher.kafka_sink import PartitionPublisher
from lakesync.streaming.publisher.mapping import (
    CHANGE_TYPE,
    COMMIT_TIMESTAMP,
    COMMIT_VERSION,
    PROBLEM,
    CompiledMapping,
)
from lakesync.streaming.publisher.state_snapshot import StateSnapshot

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
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
    # Where the time went: planning+counting, publishing to Kafka, recording in the snapshot.
    plan_s: float = 0.0
    publish_s: float = 0.0
    snapshot_s: float = 0.0

    @property
    def published(self) -> int:
        return self.upserts + self.deletes


@dataclass
class TablePipeline:
    """Callable handed to foreachBatch for one table mapping."""

    table: TableMapping
    compiled: CompiledMapping
    target_schema: StructType
    snapshot: StateSnapshot
    publisher: PartitionPublisher
    compact_every: int
    on_report: list[Callable[[BatchReport], None]] = field(default_factory=list)
    batches_done: int = 0

    def __call__(self, feed: DataFrame, batch_id: int) -> None:
        with correlation(table=self.table.name, batch_id=batch_id):
            report = self._run(feed, batch_id)
            log.info(
                "batch published",
                rows_in=report.rows_in, collapsed=report.collapsed, upserts=report.upserts,
                deletes=report.deletes, noops=report.noops, stale=report.stale,
                quarantined=report.quarantined, min_version=report.min_version,
                max_version=report.max_version, duration_s=round(report.duration_s, 3),
                plan_s=round(report.plan_s, 3), publish_s=round(report.publish_s, 3),
                snapshot_s=round(report.snapshot_s, 3),
            )
            for listener in self.on_report:
                listener(report)

    def _run(self, feed: DataFrame, batch_id: int) -> BatchReport:
        from pyspark import StorageLevel

        started = time.monotonic()
        planned = self._plan(feed, batch_id).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            report = self._count(planned, batch_id)
            report.plan_s = time.monotonic() - started
            if report.published or report.quarantined:
                planned.where(planned["action"].isin(*PUBLISHED)).select(
                    "action", "key", "value", "version", "problem"
                ).foreachPartition(self.publisher)
            report.publish_s = time.monotonic() - started - report.plan_s
            if report.published:
                self.snapshot.append(
                    planned.where(planned["action"].isin("upsert", "delete")).select(
                        "key", "row_hash", "version", planned["action"].alias("op")
                    )
                )
                self._maybe_compact()
        finally:
            planned.unpersist()
        report.duration_s = time.monotonic() - started
        report.snapshot_s = report.duration_s - report.plan_s - report.publish_s
        return report

    def _plan(self, feed: DataFrame, batch_id: int) -> DataFrame:
        from pyspark.sql import functions as F

        classified = plan(self.compiled.apply(feed), self.snapshot, self.target_schema, self.table.key_columns)
        # A quarantined delete keeps its op in the dead-letter record, so a fix can replay it.
        op = F.when(
            F.col(ACTION) == "quarantine",
            F.when(F.col(CHANGE_TYPE) == "delete", F.lit("delete")).otherwise(F.lit("upsert")),
        ).otherwise(F.col(ACTION))
        value = envelope_json(
            table=self.table.name,
            source=self.table.source,
            schema=self.target_schema,
            key_columns=self.table.key_columns,
            op=op,
            version=F.col(COMMIT_VERSION),
            commit_ts=F.col(COMMIT_TIMESTAMP),
            row_hash=F.col(PLAN_HASH),
            batch_id=batch_id,
        )
        return classified.select(
            F.col(ACTION).alias("action"),
            F.col(PLAN_KEY).alias("key"),
            F.when(F.col(ACTION).isin(*PUBLISHED), value).alias("value"),
            F.col(COMMIT_VERSION).alias("version"),
            F.col(COMMIT_TIMESTAMP).alias("commit_ts"),
            F.col(PLAN_HASH).alias("row_hash"),
            F.col(PROBLEM).alias("problem"),
            F.col(GROUP_ROWS).alias("group_rows"),
        )

    def _count(self, planned: DataFrame, batch_id: int) -> BatchReport:
        """One small aggregate (one row per action), never the data itself."""
        from pyspark.sql import functions as F

        totals = planned.groupBy("action").agg(
            F.count(F.lit(1)).alias("keys"),
            F.sum("group_rows").alias("rows"),
            F.min("version").alias("min_version"),
            F.max("version").alias("max_version"),
            F.max(F.unix_micros("commit_ts")).alias("max_commit_micros"),
        )
        report = BatchReport(self.table.name, batch_id)
        survivors = 0
        for row in totals.collect():  # at most five rows: one per action
            setattr(report, _COUNTER[row["action"]], int(row["keys"]))
            survivors += int(row["keys"])
            report.rows_in += int(row["rows"] or 0)
            report.min_version = _min(report.min_version, row["min_version"])
            report.max_version = _max(report.max_version, row["max_version"])
            if row["max_commit_micros"] is not None:
                report.max_commit_ts = max(report.max_commit_ts or 0.0, row["max_commit_micros"] / 1e6)
        report.collapsed = report.rows_in - survivors
        return report

    def _maybe_compact(self) -> None:
        self.batches_done += 1
        if self.batches_done % self.compact_every == 0:
            self.snapshot.compact()


_COUNTER = {"upsert": "upserts", "delete": "deletes", "noop": "noops", "stale": "stale", "quarantine": "quarantined"}


def _min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)
