"""Prometheus metrics of the streaming job, and the endpoints that serve them (`stream.http_port`).

Counters come from each micro-batch's `BatchReport` (a `StreamJob.on_report` listener); the
Delta version lag from a thread that reads each source table's latest version and the version
the job last published (`lakesync.stream_progress`, progress.py). `table` is the table mapping's name; `outcome` is
one of the fixed outcomes below, so the label sets stay few.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import psycopg
from confluent_kafka.admin import AdminClient
from prometheus_client import Counter, Gauge, Histogram

from lakesync.config import LakesyncSettings, TableMapping
from lakesync.logs import get_logger
from observability.endpoints import HealthServer, Probes
from streaming.publisher import source
from streaming.publisher.micro_batch import BatchReport
from streaming.publisher.progress import load_progress
from streaming.publisher.state_store import stream_target

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = get_logger(__name__)

# Every row read lands in exactly one outcome (see BatchReport).
OUTCOMES = {
    "collapsed": "collapsed",
    "noop": "noops",
    "upsert": "upserts",
    "delete": "deletes",
    "stale": "stale",
    "quarantined": "quarantined",
}
_BATCH_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)
# Reading a table's latest version asks Spark for its history: not more often than this.
_VERSION_POLL_MIN_S = 5.0

DELTA_VERSION_LAG = Gauge(
    "lakesync_stream_delta_version_lag",
    "Delta versions not yet published: the source table's latest version minus the newest published one.",
    ["table"],
)
SOURCE_VERSION = Gauge("lakesync_stream_source_version", "The source table's latest Delta version.", ["table"])
PUBLISHED_VERSION = Gauge("lakesync_stream_published_version", "The newest Delta version published.", ["table"])
BATCH_SECONDS = Histogram(
    "lakesync_stream_batch_duration_seconds",
    "Time to process one micro-batch (read, publish, snapshot).",
    ["table"],
    buckets=_BATCH_BUCKETS,
)
BATCHES = Counter("lakesync_stream_batches", "Micro-batches completed.", ["table"])
ROWS_READ = Counter("lakesync_stream_rows_read", "Change rows read from the change data feed.", ["table"])
ROWS = Counter(
    "lakesync_stream_rows",
    "What became of each change row read: collapsed (an older change of its key in the batch), noop "
    "(target already equal), upsert, delete, stale (older than the target's version), quarantined.",
    ["table", "outcome"],
)
PUBLISH_ERRORS = Counter(
    "lakesync_stream_publish_errors",
    "Micro-batches that failed (e.g. Kafka did not acknowledge); the query stops and a restart republishes.",
    ["table"],
)
LAST_BATCH = Gauge(
    "lakesync_stream_last_batch_timestamp_seconds", "When the last micro-batch completed (unix time).", ["table"]
)


class StreamObserver:
    """Records batch reports and failures; serves /metrics, /healthz, /readyz while the job runs."""

    def __init__(self, settings: LakesyncSettings, tables: Sequence[TableMapping]) -> None:
        self._settings = settings
        self._tables = list(tables)
        self.http_port: int | None = None
        for table in self._tables:  # the series exist from the start, at 0
            for outcome in OUTCOMES:
                ROWS.labels(table.name, outcome)
            PUBLISH_ERRORS.labels(table.name)

    def record_batch(self, report: BatchReport) -> None:
        BATCHES.labels(report.table).inc()
        BATCH_SECONDS.labels(report.table).observe(report.duration_s)
        ROWS_READ.labels(report.table).inc(report.rows_in)
        for outcome, attribute in OUTCOMES.items():
            ROWS.labels(report.table, outcome).inc(getattr(report, attribute))
        LAST_BATCH.labels(report.table).set(time.time())

    def record_failure(self, table: str) -> None:
        PUBLISH_ERRORS.labels(table).inc()

    @contextmanager
    def serving(self, spark: SparkSession, *, alive: Callable[[], bool]) -> Iterator[None]:
        """While the block runs: poll the version lag and serve the endpoints (if stream.http_port)."""
        port = self._settings.stream.http_port
        if not port:
            yield
            return
        stop = threading.Event()
        interval = max(self._settings.stream.trigger_interval_s, _VERSION_POLL_MIN_S)
        poller = threading.Thread(
            target=self._poll_versions, args=(spark, stop, interval), name="lakesync-version-lag", daemon=True
        )
        admin = AdminClient(self._settings.kafka.client_config())
        probes = Probes(
            alive=alive,
            readiness={
                "queries_active": alive,
                "kafka": lambda: len(admin.list_topics(timeout=2.0).brokers) > 0,
            },
        )
        server = HealthServer(self._settings.stream.http_host, port, probes)
        server.start()
        poller.start()
        self.http_port = server.port
        log.info("stream endpoints started", http_port=server.port)
        try:
            yield
        finally:
            stop.set()
            server.stop()
            poller.join(5.0)

    def update_version_lag(self, spark: SparkSession) -> None:
        """Read each table's latest version and compare it with the newest published one."""
        with psycopg.connect(**self._settings.postgres.connection_kwargs()) as conn:
            recorded = {table.name: load_progress(conn, stream_target(table)) for table in self._tables}
        for table in self._tables:
            latest = source.latest_version(spark, table)
            progress = recorded[table.name]
            published = progress.published_version if progress is not None else None
            SOURCE_VERSION.labels(table.name).set(latest)
            if published is not None:
                PUBLISHED_VERSION.labels(table.name).set(published)
            DELTA_VERSION_LAG.labels(table.name).set(version_lag(latest, published, table.starting_version))

    def _poll_versions(self, spark: SparkSession, stop: threading.Event, interval_s: float) -> None:
        while not stop.is_set():
            try:
                self.update_version_lag(spark)
            except Exception as exc:  # noqa: BLE001 (a table being rewritten, Spark busy: the next round retries)
                log.warning("delta version lag not updated", error_class=type(exc).__name__, error=str(exc)[:300])
            stop.wait(interval_s)


def version_lag(latest: int, published: int | None, starting_version: int | None) -> int:
    """Versions not yet published. Before the first batch everything from the start is pending."""
    if published is None:
        published = (starting_version - 1) if starting_version is not None else -1
    return max(latest - published, 0)
