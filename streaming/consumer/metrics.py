"""Prometheus metrics of the consumer, served at /metrics (base units, low-cardinality labels).

`table` is the table mapping's name; `op` is `upsert` or `delete`. Lag dashboards build on these
together with Kafka's committed offsets (the consumer commits them after each PostgreSQL commit).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
_BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

ROWS_APPLIED = Counter(
    "lakesync_consumer_rows_applied",
    "Rows written to PostgreSQL by the consumer (upserted or deleted).",
    ["table", "op"],
)
ROWS_STALE = Counter(
    "lakesync_consumer_rows_stale",
    "Change events skipped because the target (or its tombstone) already had a newer version.",
    ["table"],
)
MESSAGES = Counter("lakesync_consumer_messages", "Kafka messages consumed, applied or not.", ["table"])
BATCHES = Counter("lakesync_consumer_batches", "Batches committed to PostgreSQL.")
BATCHES_FENCED = Counter(
    "lakesync_consumer_batches_fenced",
    "Batches dropped because PostgreSQL held another claim or offset for their partition.",
    ["table"],
)
BATCH_APPLY_SECONDS = Histogram(
    "lakesync_consumer_batch_apply_seconds",
    "Time to apply one batch in PostgreSQL, retries included.",
    buckets=_BATCH_BUCKETS,
)
RETRIES = Counter("lakesync_consumer_retries", "Retries after transient PostgreSQL or Kafka errors.")
DEAD_LETTERS = Counter("lakesync_consumer_dead_letter_records", "Records sent to the dead-letter topic.", ["table"])
END_TO_END_LATENCY = Histogram(
    "lakesync_end_to_end_latency_seconds",
    "Delta commit timestamp to PostgreSQL commit; one observation per Delta commit per batch.",
    ["table"],
    buckets=_LATENCY_BUCKETS,
)
PAUSED = Gauge("lakesync_consumer_paused", "1 while the assigned partitions are paused (PostgreSQL unavailable).")
ASSIGNED_PARTITIONS = Gauge("lakesync_consumer_assigned_partitions", "Partitions assigned to this consumer.")
POOL_SIZE = Gauge("lakesync_consumer_pool_connections", "Connections currently open in the pool.")
POOL_AVAILABLE = Gauge("lakesync_consumer_pool_connections_available", "Idle connections in the pool.")
POOL_WAITING = Gauge("lakesync_consumer_pool_requests_waiting", "Requests waiting for a pool connection.")


def track_pool(stats: Callable[[], dict[str, int]]) -> None:
    """Read the pool gauges from `stats` (ConnectionPool.get_stats) at every scrape."""
    POOL_SIZE.set_function(lambda: float(stats().get("pool_size", 0)))
    POOL_AVAILABLE.set_function(lambda: float(stats().get("pool_available", 0)))
    POOL_WAITING.set_function(lambda: float(stats().get("requests_waiting", 0)))
