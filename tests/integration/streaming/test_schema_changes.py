"""Added columns flow through; a dropped column stops the job with a named, actionable error."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from lakesync.config import LakesyncSettings, TableMapping
from streaming.publisher.errors import SchemaChangeError
from streaming.publisher.job import StreamJob
from tests.support.stream_topics import create_delta, delta_sql, events, read_new, read_topic
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def test_added_column_flows_through(
    spark: Any,
    make_settings: Callable[..., LakesyncSettings],
    mapping: Callable[..., TableMapping],
    run_once: Callable[[LakesyncSettings], None],
) -> None:
    table = mapping()
    settings = make_settings(tables=[table])
    create_delta(spark, table.source, [(1, "a"), (2, "b")], "id long, name string")
    run_once(settings)
    before = read_topic(settings.kafka, table.topic_name)
    delta_sql(spark, "ALTER TABLE {t} ADD COLUMNS (email string)", table.source)
    delta_sql(spark, "UPDATE {t} SET email = 'a@x.org' WHERE id = 1", table.source)
    run_once(settings)
    (event,) = events(read_new(settings.kafka, table.topic_name, before))
    assert event.after == {"id": 1, "name": "a", "email": "a@x.org"}
    assert [c.name for c in event.columns] == ["id", "name", "email"]


def test_running_job_restarts_itself_when_a_column_is_added(
    spark: Any,
    make_settings: Callable[..., LakesyncSettings],
    mapping: Callable[..., TableMapping],
) -> None:
    """Delta stops a stream on any schema change; the job carries an added column and goes on."""
    table = mapping()
    settings = make_settings(tables=[table], stream={"trigger_interval_s": 0.5})
    create_delta(spark, table.source, [(1, "a")], "id long, name string")
    job = StreamJob(settings, settings.tables)
    failure: list[BaseException] = []
    runner = threading.Thread(target=lambda: _run(job, spark, failure))
    runner.start()
    try:
        _wait_until(lambda: len(read_topic(settings.kafka, table.topic_name)) == 1, runner)
        delta_sql(spark, "ALTER TABLE {t} ADD COLUMNS (score double)", table.source)
        delta_sql(spark, "UPDATE {t} SET score = 9.5 WHERE id = 1", table.source)
        _wait_until(
            lambda: any("score" in (e.after or {}) for e in events(read_topic(settings.kafka, table.topic_name))),
            runner,
        )
    finally:
        job.request_stop()
        runner.join(120)
    assert not failure, failure
    latest = events(read_topic(settings.kafka, table.topic_name))[-1]
    assert latest.after == {"id": 1, "name": "a", "score": 9.5}


def test_dropped_column_stops_the_job_naming_table_change_and_fix(
    spark: Any,
    make_settings: Callable[..., LakesyncSettings],
    mapping: Callable[..., TableMapping],
    run_once: Callable[[LakesyncSettings], None],
) -> None:
    table = mapping()
    settings = make_settings(tables=[table])
    # Dropping a column needs column mapping, which is set when the table is created.
    delta_sql(
        spark,
        "CREATE TABLE {t} (id long, name string, city string) USING delta TBLPROPERTIES ("
        "'delta.columnMapping.mode' = 'name', 'delta.enableChangeDataFeed' = 'true')",
        table.source,
    )
    delta_sql(spark, "INSERT INTO {t} VALUES (1, 'a', 'x')", table.source)
    run_once(settings)
    before = read_topic(settings.kafka, table.topic_name)
    # Delta itself refuses writes to a CDF table after a DROP COLUMN; the drop alone must stop us.
    delta_sql(spark, "ALTER TABLE {t} DROP COLUMN city", table.source)
    with pytest.raises(SchemaChangeError) as stopped:
        run_once(settings)
    message = str(stopped.value)
    assert f"table {table.name!r}" in message
    assert "dropped column(s) city" in message
    assert f"lakesync rebuild --table {table.name}" in message
    assert read_new(settings.kafka, table.topic_name, before) == []


def _run(job: StreamJob, spark: Any, failure: list[BaseException]) -> None:
    try:
        job.run(spark)
    except BaseException as exc:  # noqa: BLE001 (reported to the test thread)
        failure.append(exc)


def _wait_until(condition: Callable[[], bool], runner: threading.Thread, timeout_s: float = 180.0) -> None:
    wait_until(condition, timeout_s, "the job's output", interval_s=1.0, alive=runner.is_alive)
