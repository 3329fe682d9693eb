"""Rebuild: shadow load and atomic swap, safe under readers and kills, stream resumes after it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from batch.rebuild import rebuild, side_name
from batch.reconcile import reconcile
from streaming.publisher.errors import SchemaChangeError, TableBusyError
from streaming.publisher.job import StreamJob
from streaming.publisher.progress import read_progress
from streaming.publisher.state_store import stream_target
from streaming.publisher.table_lock import TableLock
from tests.support.pipeline import Pipeline
from tests.support.rich_rows import SCHEMA, row
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def write(spark: Any, path: str, ids: range, mode: str = "overwrite") -> None:
    frame = spark.range(ids.start, ids.stop).selectExpr("id", "concat('n', id) AS name", "id * 1.5 AS score")
    frame.write.format("delta").mode(mode).option("delta.enableChangeDataFeed", "true").save(path)


def test_rebuild_loads_every_type_and_readers_never_see_a_partial_table(
    pipeline: Callable[..., Pipeline], spark: Any
) -> None:
    p = pipeline()
    spark.createDataFrame([row(i) for i in range(1, 31)], SCHEMA).write.format("delta").option(
        "delta.enableChangeDataFeed", "true"
    ).save(p.table.source)
    first = rebuild(spark, p.settings, p.table)
    assert (first.rows, first.version) == (30, 0)
    assert reconcile(spark, p.settings, p.table, wait_s=None).counts.equal == 30  # every type loaded exactly

    spark.createDataFrame([row(i) for i in range(31, 3001)], SCHEMA).write.format("delta").mode("append").save(
        p.table.source
    )
    seen: set[int] = set()
    errors: list[BaseException] = []
    stop = threading.Event()
    reader = threading.Thread(target=_read_counts, args=(p, stop, seen, errors), daemon=True)
    reader.start()
    try:
        second = rebuild(spark, p.settings, p.table)
    finally:
        stop.set()
        reader.join(30)
    assert not errors, errors
    assert seen <= {30, 3000} and 30 in seen, seen  # the old table or the whole new one, nothing between
    assert second.rows == 3000 and p.pg("SELECT count(*) FROM {t}") == [(3000,)]
    assert p.pg("SELECT to_regclass(%s)", f"public.{side_name(p.table.target_table, 'rebuild')}") == [(None,)]
    assert p.pg("SELECT to_regclass(%s)", f"public.{side_name(p.table.target_table, 'old')}") == [(None,)]
    assert p.pg(
        "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(%s) AND contype = 'p'",
        f"public.{p.table.target_table}",
    ) == [(f"{p.table.target_table}_pkey",)]


def _read_counts(p: Pipeline, stop: threading.Event, seen: set[int], errors: list[BaseException]) -> None:
    with psycopg.connect(**p.settings.postgres.connection_kwargs(), autocommit=True) as conn:
        while not stop.is_set():
            try:
                seen.add(p.pg("SELECT count(*) FROM {t}")[0][0])
            except psycopg.Error as exc:
                errors.append(exc)
            time.sleep(0.02)
    del conn


def test_stream_resumes_after_the_rebuilt_version_without_gap_or_double_apply(
    pipeline: Callable[..., Pipeline], spark: Any
) -> None:
    """A dropped column stops the stream; rebuild is the fix; then only later changes flow."""
    from tests.support.stream_topics import read_topic

    p = pipeline()
    p.sql(
        "CREATE TABLE {t} (id long, name string, city string) USING delta TBLPROPERTIES ("
        "'delta.columnMapping.mode' = 'name', 'delta.enableChangeDataFeed' = 'true')"
    )
    p.sql("INSERT INTO {t} VALUES (1, 'a', 'x'), (2, 'b', 'y'), (3, 'c', 'z')")
    p.sync()
    p.sql("ALTER TABLE {t} DROP COLUMN city")
    with pytest.raises(SchemaChangeError):
        StreamJob(p.settings, p.settings.tables, once=True).run(spark)

    rebuilt = rebuild(spark, p.settings, p.table)
    before = read_topic(p.settings.kafka, p.table.topic_name)
    # The rebuild left CDF writes blocked (column mapping + drop): new commits need a fresh table
    # version history, so change data through a new column instead of rewriting the table.
    assert p.pg("SELECT id, name FROM {t} ORDER BY id") == [(1, "a"), (2, "b"), (3, "c")]
    assert [
        c
        for (c,) in p.pg(
            "SELECT column_name::text FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
            p.table.target_table,
        )
    ][:2] == ["id", "name"]
    StreamJob(p.settings, p.settings.tables, once=True).run(spark)
    assert read_topic(p.settings.kafka, p.table.topic_name) == before  # nothing at or before V again
    progress = read_progress(p.settings.postgres, stream_target(p.table))
    assert progress is not None and progress.completed_version is not None
    assert progress.completed_version >= rebuilt.version


def test_rebuild_of_a_streamed_table_then_new_commits_flow_exactly_once(
    pipeline: Callable[..., Pipeline], spark: Any
) -> None:
    from tests.support.stream_topics import events, read_new, read_topic

    p = pipeline(key_columns=["id"])
    write(spark, p.table.source, range(50))
    p.sync()
    p.sql("UPDATE {t} SET name = 'before-rebuild' WHERE id < 5")
    rebuilt = rebuild(spark, p.settings, p.table)  # includes the update without streaming it
    before = read_topic(p.settings.kafka, p.table.topic_name)
    p.sql("UPDATE {t} SET name = 'after-rebuild' WHERE id = 7")
    p.reports.clear()
    p.sync()
    new = events(read_new(p.settings.kafka, p.table.topic_name, before))
    assert [(e.key, e.version) for e in new] == [((7,), rebuilt.version + 1)]
    # The stream starts after V, not at it: V's own changes (the whole table when V created it)
    # are not read again once V + 1 exists.
    assert [(r.min_version, r.rows_in) for r in p.reports if r.rows_in] == [(rebuilt.version + 1, 2)]
    assert reconcile(spark, p.settings, p.table).counts.drift == 0


def test_rebuild_refuses_while_the_stream_runs(pipeline: Callable[..., Pipeline], spark: Any) -> None:
    p = pipeline()
    write(spark, p.table.source, range(5))
    with (
        TableLock(p.settings.postgres, stream_target(p.table), p.table.name, "streaming"),
        pytest.raises(TableBusyError, match="stop it before rebuilding"),
    ):
        rebuild(spark, p.settings, p.table)


def test_a_rebuild_killed_midway_leaves_the_live_table_intact(
    pipeline: Callable[..., Pipeline], spark: Any, embedded_stack: Any, tmp_path: Path
) -> None:
    p = pipeline()
    write(spark, p.table.source, range(20))
    rebuild(spark, p.settings, p.table)
    live_before = p.pg("SELECT count(*), sum(id), string_agg(name, ',' ORDER BY id) FROM {t}")
    write(spark, p.table.source, range(250_000))
    env = {
        **os.environ,
        "LAKESYNC_TABLES": "[" + p.table.model_dump_json() + "]",
        "LAKESYNC_STATE_DIR": str(p.settings.state_dir),
        "LAKESYNC_SPARK": '{"ui_enabled": false, "shuffle_partitions": 2, "driver_memory": "1g"}',
    }
    command = [
        sys.executable,
        "-m",
        "lakesync",
        "--config",
        str(embedded_stack.config_file),
        "rebuild",
        "--table",
        p.table.name,
    ]
    log = tmp_path / "rebuild.log"
    with log.open("w") as out:
        job = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_copy(p, job, log)
        os.killpg(job.pid, signal.SIGKILL)  # the CLI, its JVM and the Python workers
        job.wait(30)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    assert p.pg("SELECT count(*), sum(id), string_agg(name, ',' ORDER BY id) FROM {t}") == live_before

    rerun = rebuild(spark, p.settings, p.table)  # starts clean: drops the killed run's shadow
    assert rerun.rows == 250_000 and p.pg("SELECT count(*) FROM {t}") == [(250_000,)]


def _wait_for_copy(p: Pipeline, job: subprocess.Popen[bytes], log: Path, timeout_s: float = 180) -> None:
    """Until PostgreSQL runs one of the rebuild's COPY statements."""
    wait_until(
        lambda: p.pg(
            "SELECT 1 FROM pg_stat_activity WHERE query LIKE %s AND state = 'active'", "COPY %__lakesync_rebuild%"
        ),
        timeout_s,
        "the rebuild's COPY",
        interval_s=0.1,
        alive=lambda: job.poll() is None,
        details=lambda: log.read_text()[-3000:],
    )
