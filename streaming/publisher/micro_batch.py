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
from streaming.publisher import diff
from streaming.publisher.diff import ACTION, ACTIONS, GROUP_ROWS, PLAN_HASH, PLAN_KEY, PUBLISHED
from streaming.publisher.envelope_spark import envelope_json
from streaming.publisher.kafka_sink import (
    STATE_ROW_SCHEMA,
    OffsetSpans,
    OffsetSpansParam,
    PartitionPublisher,
    describe_spans,
)
from streaming.publisher.mapping import (
    CHANGE_TYPE,
    COMMIT_TIMESTAMP,
    COMMIT_VERSION,
    PROBLEM,
    CompiledMapping,
)
from streaming.publisher.state_snapshot import StateSnapshot

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType

log = get_logger(__name__)

# Batches up to this many change rows broadcast their keys to the state lookup instead of
# shuffling the state snapshot, which holds every key of the table.
SMALL_BATCH_ROWS = 200_000


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
    # Where the time went: reading the feed (map, key, hash), then classifying + publishing +
    # logging to the state snapshot (one Spark job), then folding the snapshot's log.
    read_s: float = 0.0
    publish_s: float = 0.0
    compact_s: float = 0.0
    # Partition -> (first, last) offset written to the table's topic: the consumer logs the same.
    offsets: OffsetSpans = field(default_factory=dict)

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
                read_s=round(report.read_s, 3),
                publish_s=round(report.publish_s, 3),
                compact_s=round(report.compact_s, 3),
                topic=self.table.topic_name,
                offsets=describe_spans(self.table.topic_name, report.offsets),
            )
            for listener in self.on_report:
                listener(report)

    def _run(self, feed: DataFrame, batch_id: int) -> BatchReport:
        """Two passes: read the feed once (persisted), then one job that publishes everything."""
        from pyspark import StorageLevel

        started = time.monotonic()
        report = BatchReport(self.table.name, batch_id)
        keyed = diff.keyed(self.compiled.apply(feed), self.target_schema, self.table.key_columns)
        keyed = keyed.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            self._read_totals(keyed, report)
            report.read_s = time.monotonic() - started
            if report.rows_in:
                self._publish(keyed, batch_id, report)
                report.publish_s = time.monotonic() - started - report.read_s
                if report.published:
                    self._maybe_compact()
        finally:
            keyed.unpersist()
        report.duration_s = time.monotonic() - started
        report.compact_s = report.duration_s - report.read_s - report.publish_s
        return report

    def _read_totals(self, keyed: DataFrame, report: BatchReport) -> None:
        """Materialize the persisted feed and read its totals: one small row, never the data."""
        from pyspark.sql import functions as F

        totals = keyed.agg(
            F.count(F.lit(1)).alias("rows"),
            F.min(COMMIT_VERSION).alias("min_version"),
            F.max(COMMIT_VERSION).alias("max_version"),
            F.max(F.unix_micros(COMMIT_TIMESTAMP)).alias("max_commit_micros"),
        ).first()
        assert totals is not None
        report.rows_in = int(totals["rows"])
        report.min_version, report.max_version = totals["min_version"], totals["max_version"]
        if totals["max_commit_micros"] is not None:
            report.max_commit_ts = totals["max_commit_micros"] / 1e6

    def _publish(self, keyed: DataFrame, batch_id: int, report: BatchReport) -> None:
        """Classify, publish and log to the state snapshot in one job; counts via accumulators."""
        spark = keyed.sparkSession
        counters = {name: spark.sparkContext.accumulator(0) for name in (*ACTIONS, "group_rows")}
        counters["offsets"] = spark.sparkContext.accumulator({}, OffsetSpansParam())
        planned = self._plan(keyed, batch_id, small=report.rows_in <= SMALL_BATCH_ROWS)
        state_rows = planned.mapInArrow(self.publisher.for_batch(counters), STATE_ROW_SCHEMA)
        self.snapshot.append(state_rows)
        for action in ACTIONS:
            setattr(report, _COUNTER[action], counters[action].value)
        survivors = sum(counters[action].value for action in ACTIONS)
        report.collapsed = counters["group_rows"].value - survivors
        report.offsets = dict(counters["offsets"].value)

    def _plan(self, keyed: DataFrame, batch_id: int, *, small: bool) -> DataFrame:
        from pyspark.sql import functions as F

        survivors = diff.collapse(keyed)
        state = self.snapshot.state_for(survivors.select(F.col(PLAN_KEY).alias("key")), small=small)
        classified = diff.classify(survivors, state, small=small)
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
            F.when(F.col(ACTION).isin(*PUBLISHED), value).cast("binary").alias("value"),
            F.col(COMMIT_VERSION).alias("version"),
            F.col(PROBLEM).alias("problem"),
            F.col(PLAN_HASH).alias("row_hash"),
            F.col(GROUP_ROWS).alias("group_rows"),
        )

    def _maybe_compact(self) -> None:
        self.batches_done += 1
        if self.batches_done % self.compact_every == 0:
            self.snapshot.compact()


_COUNTER = {"upsert": "upserts", "delete": "deletes", "noop": "noops", "stale": "stale", "quarantine": "quarantined"}
