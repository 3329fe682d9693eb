"""A stream whose table lock's PostgreSQL session ends stops: another process may own the table now."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from streaming.publisher.job import StreamJob
from streaming.publisher.table_lock import TableLockLostError
from tests.support.pipeline import Pipeline
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def test_a_stream_that_loses_its_lock_stops_and_says_why(pipeline: Callable[..., Pipeline], spark: Any) -> None:
    p = pipeline()
    spark.range(10).selectExpr("id", "concat('n', id) AS name").write.format("delta").option(
        "delta.enableChangeDataFeed", "true"
    ).save(p.table.source)
    settings = p.settings.model_copy(
        update={
            "stream": p.settings.stream.model_copy(update={"lock_check_interval_s": 0.5, "trigger_interval_s": 0.5})
        }
    )
    job = StreamJob(settings, settings.tables)
    failure: list[BaseException] = []
    runner = threading.Thread(target=lambda: _run(job, spark, failure), daemon=True)
    runner.start()
    wait_until(lambda: bool(job._queries) or bool(failure), 120, "the stream to start")
    with psycopg.connect(**settings.postgres.connection_kwargs(), autocommit=True) as admin:
        ended = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE %s",
            (f"lakesync streaming (pid {os.getpid()} %",),
        ).fetchall()
    assert ended == [(True,)]
    runner.join(60)
    assert not runner.is_alive(), "the stream went on without its lock"
    assert len(failure) == 1 and isinstance(failure[0], TableLockLostError)
    assert not [q for q in spark.streams.active if q.name == f"lakesync-{p.table.name}"]


def _run(job: StreamJob, spark: Any, failure: list[BaseException]) -> None:
    try:
        job.run(spark)
    except BaseException as exc:  # noqa: BLE001 (the test asserts on it)
        failure.append(exc)
