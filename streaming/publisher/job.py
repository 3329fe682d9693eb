"""`lakesync stream`: one Spark application, one streaming query per table mapping.

Each table's query reads its change data feed, and its foreachBatch publishes the batch's real
changes (micro_batch.py). Checkpoints live in `<state_dir>/<table>/` (a local directory or
`s3a://...`); the state, progress, recorded schema and table lock in PostgreSQL. The job:

- fails at start-up on anything it can check early (CDF off, unsupported types, schema drift);
- restarts a table's query by itself when its source grew a column (Delta stops the stream on
  any schema change; additive ones are carried), and stops with guidance on other changes;
- on SIGTERM/SIGINT lets running batches finish (up to `stream.shutdown_timeout_s`), then
  stops the queries; a SIGKILL at any point resumes from the checkpoint on restart;
- stops at once, failing, when it loses a table's lock (table_lock.py).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg_pool import PoolTimeout

from connectors.consumer_position import wait_for_consumer
from connectors.kafka import (
    CHANGE_TOPIC_CONFIG,
    DEAD_LETTER_TOPIC_CONFIG,
    ensure_topics,
    producer_config,
)
from connectors.postgres import open_pool
from connectors.spark import build_spark_session, object_storage
from connectors.spark_types import target_columns
from lakesync import preflight
from lakesync.config import LakesyncSettings, TableMapping
from lakesync.logs import correlation, get_logger
from streaming.publisher import source
from streaming.publisher.errors import StreamFailedError
from streaming.publisher.mapping import CompiledMapping, compile_mapping
from streaming.publisher.metrics import StreamObserver
from streaming.publisher.micro_batch import BatchReport, TablePipeline
from streaming.publisher.partition_publisher import PartitionPublisher
from streaming.publisher.progress import (
    Progress,
    completed_from_offset,
    end_offset_of,
    ensure_progress_table,
    load_progress,
    record_progress,
)
from streaming.publisher.schema_guard import compare, refusal
from streaming.publisher.seed import seed_state
from streaming.publisher.state_dir import (
    checkpoint_dir,
    has_checkpoint,
    legacy_schema,
    schema_record,
    table_state_dir,
)
from streaming.publisher.state_store import StateTable, ensure_state_table, stream_target
from streaming.publisher.table_lock import TableLock, TableLockLostError

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool
    from pyspark.sql import SparkSession
    from pyspark.sql.streaming.query import StreamingQuery
    from pyspark.sql.streaming.readwriter import DataStreamWriter

log = get_logger(__name__)


@dataclass
class StreamJob:
    settings: LakesyncSettings
    tables: Sequence[TableMapping]
    # availableNow: process everything committed so far, then stop (backfills, tests).
    once: bool = False
    on_report: list[Callable[[BatchReport], None]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock_lost: threading.Event = field(default_factory=threading.Event)
    _queries: dict[str, StreamingQuery] = field(default_factory=dict)
    _recorded_batch: dict[str, int] = field(default_factory=dict)
    _locks: dict[str, TableLock] = field(default_factory=dict)
    _pg: ConnectionPool | None = None

    def __post_init__(self) -> None:
        # Every batch feeds the metrics, served over HTTP while the queries run (stream.http_port).
        self.observer = StreamObserver(self.settings, self.tables)
        self.on_report.append(self.observer.record_batch)
        self._tables_by_name = {t.name: t for t in self.tables}

    def run(self, spark: SparkSession | None = None) -> None:
        """Run until stopped (or, with once=True, until every table is caught up)."""
        # Before Spark starts and before any topic exists: a broken world stops here, in one line.
        preflight.require_ready(self.settings, self.tables, preflight.STREAM)
        spark = spark or build_spark_session(self.settings.spark, s3=object_storage(self.settings))
        self.on_report.append(self._note_published)
        self._pg = open_pool(self.settings.postgres, name="lakesync-stream", min_size=1, max_size=2)
        try:
            for table in self.tables:  # before anything else: a rebuild may be running
                self._locks[table.name] = self._lock(table).acquire()
            # Every table is checked by Spark (mapping, types) before any topic is created.
            writers = {table.name: self._prepare(spark, table) for table in self.tables}
            self._ensure_topics()
            for table in self.tables:
                self._queries[table.name] = self._launch(table, writers[table.name])
            self._supervise(spark)
        finally:
            for lock in self._locks.values():
                lock.release()
            self._pg.close()

    def _lock(self, table: TableMapping) -> TableLock:
        return TableLock(
            self.settings.postgres,
            stream_target(table),
            table.name,
            "streaming",
            check_interval_s=self.settings.stream.lock_check_interval_s,
            on_lost=self._lock_lost.set,
        )

    def request_stop(self, *_: Any) -> None:
        """Signal handler / API: finish the running batches, then stop."""
        self._stop.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("stop requested", signal=signal.Signals(signum).name)
        self._stop.set()

    def _ensure_topics(self) -> None:
        kafka = self.settings.kafka
        ensure_topics(kafka, [t.topic_name for t in self.tables], config=CHANGE_TOPIC_CONFIG)
        ensure_topics(kafka, [kafka.dead_letter_topic], config=DEAD_LETTER_TOPIC_CONFIG)

    def _start(self, spark: SparkSession, table: TableMapping) -> StreamingQuery:
        return self._launch(table, self._prepare(spark, table))

    def _prepare(self, spark: SparkSession, table: TableMapping) -> DataStreamWriter:
        """Check the source and the mapping with Spark, seed the state if needed; the query, unstarted."""
        with correlation(table=table.name):
            source.require_change_feed(spark, table)
            state = table_state_dir(self.settings, table)
            self._check_schema(spark, table, state)
            progress = self._progress(table)
            feed = source.change_feed(
                spark, table, starting_version=self._resume_version(spark, table, progress, state)
            )
            compiled = compile_mapping(spark, table)
            target_schema = CompiledMapping.target_schema(compiled.apply(feed))
            target_columns(target_schema)  # unsupported types fail here, naming the column
            if progress is None or not progress.seeded:
                self._seed(spark, table, target_schema)
            pipeline = TablePipeline(
                table=table,
                compiled=compiled,
                target_schema=target_schema,
                publisher=self._publisher(table, target_schema),
                on_report=self.on_report,
            )
            writer = (
                feed.writeStream.foreachBatch(pipeline)
                .queryName(f"lakesync-{table.name}")
                .option("checkpointLocation", checkpoint_dir(state))
            )
            return (
                writer.trigger(availableNow=True)
                if self.once
                else writer.trigger(processingTime=f"{self.settings.stream.trigger_interval_s} seconds")
            )

    @staticmethod
    def _resume_version(spark: SparkSession, table: TableMapping, progress: Progress | None, state: str) -> int | None:
        """Where a stream without a checkpoint starts after `lakesync rebuild` loaded version V: at V + 1
        when it exists. Otherwise at V itself, whose changes diff as no-ops against the rebuilt state
        (Delta refuses a starting version beyond the latest) but cost a read of that whole commit:
        the table itself when V created it."""
        if progress is None or progress.resume_version is None or has_checkpoint(spark, state):
            return None
        loaded = progress.resume_version
        return loaded + 1 if source.latest_version(spark, table) > loaded else loaded

    def _launch(self, table: TableMapping, writer: DataStreamWriter) -> StreamingQuery:
        with correlation(table=table.name):
            query = writer.start()
            log.info("stream started", source=table.source, topic=table.topic_name, query_id=str(query.id))
            return query

    def _seed(self, spark: SparkSession, table: TableMapping, target_schema: Any) -> None:
        """Seed the state from the target, once the consumer applied everything already published.

        A key published but not applied yet is not in the target: seeded without it, the state
        would take its later delete for a no-op and the row would stay in PostgreSQL for ever.
        """
        wait_s = self.settings.stream.seed_wait_s
        with correlation(table=table.name):
            wait_for_consumer(
                self.settings,
                table,
                wait_s,
                on_wait=lambda behind: log.info("waiting for the consumer before seeding the state", behind=behind),
                remedy=(
                    "the stream seeds its state from the target only once everything already published is "
                    "applied. Start `lakesync consume` (same consumer.group_id), or raise stream.seed_wait_s."
                ),
            )
            seed_state(spark, self.settings.postgres, table, target_schema)

    def _publisher(self, table: TableMapping, target_schema: Any) -> PartitionPublisher:
        types = {c.name: c.pg_type for c in target_columns(target_schema)}
        return PartitionPublisher(
            producer_config=producer_config(self.settings.kafka),
            topic=table.topic_name,
            dead_letter_topic=self.settings.kafka.dead_letter_topic,
            table=table.name,
            key_types=[types[k] for k in table.key_columns],
            state=StateTable.of(table),
            connection=self.settings.postgres.connection_kwargs(),
            retry_deadline_s=self.settings.stream.postgres_retry_deadline_s,
        )

    def _progress(self, table: TableMapping) -> Progress | None:
        """The table's recorded progress, after making sure its bookkeeping tables exist."""
        with self._pool().connection() as conn:
            ensure_progress_table(conn)
            ensure_state_table(conn, StateTable.of(table))
            return load_progress(conn, stream_target(table))

    def _pool(self) -> ConnectionPool:
        assert self._pg is not None, "the job's PostgreSQL pool opens in run()"
        return self._pg

    def _check_schema(self, spark: SparkSession, table: TableMapping, state: str) -> bool:
        """Record the source schema; True if it grew. Non-additive changes raise SchemaChangeError."""
        record = schema_record(self.settings, table)
        current = source.current_schema(spark, table)
        recorded = record.load()
        if recorded is None:  # an older lakesync recorded it beside the checkpoint: carry it over
            recorded = legacy_schema(spark, state)
            if recorded is not None:
                record.save(recorded)
        if recorded is None:
            record.save(current)
            return False
        change = compare(recorded, current)
        if change.unchanged:
            return False
        if not change.additive:
            raise refusal(table.name, change)
        log.warning("source schema grew; carrying the new columns", change=change.describe())
        record.save(current)
        return True

    def _supervise(self, spark: SparkSession) -> None:
        with self.observer.serving(spark, alive=lambda: all(q.isActive for q in list(self._queries.values()))):
            self._watch(spark)

    def _watch(self, spark: SparkSession) -> None:
        by_name = {t.name: t for t in self.tables}
        while self._queries:
            if self._lock_lost.is_set():
                self._stop_now()
                raise TableLockLostError(
                    "lost a table lock (its PostgreSQL connection dropped); stopped the stream so that a "
                    "restart takes the lock again or is refused while another process holds it"
                )
            if self._stop.is_set():
                self._stop_gracefully(spark)
                return
            for name, query in list(self._queries.items()):
                active = query.isActive
                # After reading isActive: a batch that completed just before the query ended counts.
                self._record_progress(spark, by_name[name], query)
                if active:
                    continue
                del self._queries[name]
                self._handle_end(spark, by_name[name], query)
            time.sleep(0.2)

    def _note_published(self, report: BatchReport) -> None:
        """The batch's newest version is published (the state already records it)."""
        if report.max_version is not None:
            table = self._tables_by_name[report.table]
            self._save_progress(table, completed=None, published=report.max_version, batch_id=report.batch_id)

    def _record_progress(self, spark: SparkSession, table: TableMapping, query: StreamingQuery) -> None:
        """Record the completed version when the query committed a batch since the last look."""
        last = query.lastProgress
        if not last or self._recorded_batch.get(table.name) == last["batchId"]:
            return
        completed = completed_from_offset(
            end_offset_of(dict(last)), lambda version: source.change_feed_files(spark, table, version)
        )
        if completed is not None:
            self._save_progress(table, completed=completed, published=None, batch_id=last["batchId"])
        self._recorded_batch[table.name] = last["batchId"]

    def _save_progress(
        self, table: TableMapping, *, completed: int | None, published: int | None, batch_id: int
    ) -> None:
        """Progress only moves forward, so a write lost to a PostgreSQL outage is caught up by the next."""
        try:
            with self._pool().connection(timeout=5.0) as conn:
                record_progress(conn, stream_target(table), completed=completed, published=published, batch_id=batch_id)
        except (psycopg.Error, PoolTimeout) as exc:
            log.warning("progress not recorded; the next batch records it", table=table.name, error=str(exc)[:300])

    def _handle_end(self, spark: SparkSession, table: TableMapping, query: StreamingQuery) -> None:
        """A query ended: done (once), restart after a carried schema change, or fail."""
        error = query.exception()
        if error is None:
            log.info("stream finished", table=table.name)
            return
        if self._check_schema(spark, table, table_state_dir(self.settings, table)):
            self._queries[table.name] = self._start(spark, table)
            return
        self.observer.record_failure(table.name)
        self._stop_gracefully(spark)
        raise StreamFailedError(f"table {table.name!r}: streaming query failed: {_first_line(error)}") from None

    def _stop_now(self) -> None:
        """Stop every query without waiting for its batch: another process may own the tables now."""
        for query in self._queries.values():
            query.stop()
        self._queries.clear()

    def _stop_gracefully(self, spark: SparkSession) -> None:
        deadline = time.monotonic() + self.settings.stream.shutdown_timeout_s
        for name, query in self._queries.items():
            while query.isActive and query.status.get("isTriggerActive") and time.monotonic() < deadline:
                time.sleep(0.1)
            query.stop()
            self._record_progress(spark, self._tables_by_name[name], query)
            log.info("stream stopped", table=name)
        self._queries.clear()


def _first_line(error: Any) -> str:
    text = str(getattr(error, "desc", None) or error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__
