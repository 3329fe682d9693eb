"""The streaming job's counters follow its batch reports; failures are counted per table."""

from __future__ import annotations

import uuid

from prometheus_client import REGISTRY

from lakesync.config import LakesyncSettings, TableMapping
from streaming.publisher.metrics import StreamObserver
from streaming.publisher.micro_batch import BatchReport


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_every_row_read_lands_in_one_outcome_and_failures_are_counted() -> None:
    name = "t" + uuid.uuid4().hex[:8]
    table = TableMapping(name=name, source_path="/lake/x", target_table=name, key_columns=["id"])
    observer = StreamObserver(LakesyncSettings(tables=[table]), [table])
    assert value("lakesync_stream_rows_total", table=name, outcome="quarantined") == 0  # present from the start
    assert value("lakesync_stream_publish_errors_total", table=name) == 0

    report = BatchReport(
        name, 7, rows_in=10, collapsed=2, upserts=4, deletes=1, noops=1, stale=1, quarantined=1, duration_s=0.7
    )
    observer.record_batch(report)
    observer.record_batch(report)
    outcomes = {
        o: value("lakesync_stream_rows_total", table=name, outcome=o)
        for o in ("collapsed", "noop", "upsert", "delete", "stale", "quarantined")
    }
    assert outcomes == {"collapsed": 4, "noop": 2, "upsert": 8, "delete": 2, "stale": 2, "quarantined": 2}
    assert sum(v or 0.0 for v in outcomes.values()) == value("lakesync_stream_rows_read_total", table=name) == 20
    assert value("lakesync_stream_batches_total", table=name) == 2
    assert value("lakesync_stream_batch_duration_seconds_count", table=name) == 2
    assert value("lakesync_stream_batch_duration_seconds_sum", table=name) == 1.4

    observer.record_failure(name)
    assert value("lakesync_stream_publish_errors_total", table=name) == 1
