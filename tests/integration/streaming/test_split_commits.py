"""A Delta commit read over several micro-batches is never half-applied (issue: rows lost on overwrite).

Delta admits a commit's files in pieces when the commit has more files than a micro-batch takes
(`max_files_per_trigger`) and records its changes as added and removed files (overwrites,
appends). A commit that records them in change-data files (MERGE, UPDATE, DELETE) or with
deletion vectors is admitted whole (DeltaSourceCDCSupport.filterFiles), whatever its size. Each
test makes a commit with several times more files than a micro-batch takes, syncs it through the
real stream job, Kafka and the consumer, and compares PostgreSQL with the Delta table.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from connectors.delta_log import change_feed_files, commit_actions
from deploy.embedded_stack import EmbeddedStack
from streaming.publisher.progress import read_progress
from streaming.publisher.state_store import stream_target
from tests.support.consumer_run import run_until_caught_up
from tests.support.pipeline import Pipeline
from tests.support.wait import wait_until

from .test_restart import stream_command

pytestmark = pytest.mark.integration

ROWS, FILES, PER_TRIGGER = 1200, 12, 3
SCHEMA = "id long, name string, score double"


def rows(ids: range, tag: str = "n") -> list[tuple[int, str, float]]:
    return [(i, f"{tag}{i}", i * 1.5) for i in ids]


def write(p: Pipeline, data: list[tuple[int, str, float]], mode: str, files: int = FILES, **options: str) -> int:
    """Write `data` in `files` files; returns the new commit's version."""
    writer = p.spark.createDataFrame(data, SCHEMA).repartition(files).write.format("delta").mode(mode)
    writer = writer.option("delta.enableChangeDataFeed", "true")
    for key, value in options.items():
        writer = writer.option(key, value)
    writer.save(p.table.source)
    return latest_version(p)


def latest_version(p: Pipeline) -> int:
    return int(p.spark.sql(f"DESCRIBE HISTORY delta.`{p.table.source}` LIMIT 1").first()["version"])


def partitioned(p: Pipeline, data: list[tuple[int, str, float]], **options: str) -> int:
    """Overwrite (all, or what `replaceWhere` selects) partitioned by `bucket` = id div 100, one
    file per bucket; returns the new commit's version."""
    frame = p.spark.createDataFrame(data, SCHEMA).selectExpr("*", "CAST(id DIV 100 AS INT) AS bucket")
    writer = frame.repartition("bucket").write.format("delta").mode("overwrite").partitionBy("bucket")
    for key, value in {"delta.enableChangeDataFeed": "true", **options}.items():
        writer = writer.option(key, value)
    writer.save(p.table.source)
    return latest_version(p)


def assert_split_then_equal(p: Pipeline, version: int, *, splittable: bool = True) -> None:
    """The commit has more files than a batch takes (and, if Delta splits such commits, spanned
    several micro-batches); PostgreSQL ended equal to Delta."""
    actions = commit_actions(p.spark, p.table.source, version) or []
    files = change_feed_files(actions)
    kinds = sorted({kind for a in actions for kind in a})
    assert files > PER_TRIGGER, f"commit {version} has {files} files ({kinds}): a batch takes it whole"
    p.reports.clear()
    p.sync()
    batches = [r for r in p.reports if r.min_version == r.max_version == version and r.rows_in]
    if splittable:
        assert len(batches) >= 2, f"version {version} ({kinds}) was read in {len(batches)} batch(es): {p.reports}"
    assert p.target_rows() == p.delta_rows()


def test_overwrites_merges_and_reinserts_spanning_micro_batches_keep_postgres_equal_to_delta(
    pipeline: Callable[..., Pipeline],
) -> None:
    """One table, rate-limited to 3 files a batch, through commits of 12 and more files each."""
    p = pipeline(max_files_per_trigger=PER_TRIGGER)
    partitioned(p, rows(range(ROWS)))
    p.sync()
    assert len(p.target_rows()) == ROWS

    # A full overwrite with identical rows: every row deleted and re-inserted in one commit.
    assert_split_then_equal(p, partitioned(p, rows(range(ROWS))))
    assert len(p.target_rows()) == ROWS
    # A full overwrite with changed rows: updates, deletes and inserts.
    changed = rows(range(0, ROWS, 2)) + rows(range(1, ROWS, 4), tag="changed") + rows(range(ROWS, ROWS + 100))
    assert_split_then_equal(p, partitioned(p, changed))
    # A predicate overwrite: the files of the selected partitions removed, new ones added.
    assert_split_then_equal(p, partitioned(p, rows(range(600, 900), tag="replaced"), replaceWhere="bucket >= 6"))
    assert {r[0] for r in p.target_rows()} == {i for i, _, _ in changed if i < 600} | set(range(600, 900))
    # A MERGE whose change files outnumber what a batch takes: Delta admits it whole.
    incoming = rows(range(0, 900, 3), tag="merged") + rows(range(ROWS, ROWS + 50))
    p.spark.createDataFrame(incoming, SCHEMA).selectExpr("*", "CAST(id DIV 100 AS INT) AS bucket").repartition(
        FILES
    ).createOrReplaceTempView("incoming")
    with _write_tasks(p, FILES):
        p.sql(
            """MERGE INTO {t} AS t USING incoming AS s ON t.id = s.id
               WHEN MATCHED AND s.id % 2 = 0 THEN DELETE
               WHEN MATCHED THEN UPDATE SET *
               WHEN NOT MATCHED THEN INSERT *"""
        )
    assert_split_then_equal(p, latest_version(p), splittable=False)
    # A delete, then the same keys inserted again by an append of many files.
    p.sql("DELETE FROM {t} WHERE id % 5 = 0")
    back = p.spark.createDataFrame(rows(range(0, 900, 5), tag="back"), SCHEMA)
    back.selectExpr("*", "CAST(id DIV 100 AS INT) AS bucket").repartition(FILES).write.format("delta").mode(
        "append"
    ).partitionBy("bucket").save(p.table.source)
    assert_split_then_equal(p, latest_version(p))


@contextmanager
def _write_tasks(p: Pipeline, tasks: int) -> Iterator[None]:
    """Spark writes with `tasks` tasks (so a MERGE writes that many change files) inside the block."""
    previous = p.spark.conf.get("spark.sql.shuffle.partitions")
    p.spark.conf.set("spark.sql.shuffle.partitions", str(tasks))
    p.spark.conf.set("spark.sql.adaptive.enabled", "false")
    try:
        yield
    finally:
        p.spark.conf.set("spark.sql.shuffle.partitions", previous)
        p.spark.conf.set("spark.sql.adaptive.enabled", "true")


def test_stream_killed_between_two_batches_of_a_split_version_loses_nothing(
    pipeline: Callable[..., Pipeline], embedded_stack: EmbeddedStack, tmp_path: Path
) -> None:
    p = pipeline(max_files_per_trigger=2)
    write(p, rows(range(ROWS)), "overwrite", files=24)
    p.sync()
    data = rows(range(0, ROWS, 2)) + rows(range(1, ROWS, 2), tag="changed")
    version = write(p, data, "overwrite", files=24)
    command, env = stream_command(embedded_stack, p.settings, "--once")
    log_path = tmp_path / "stream.log"
    with log_path.open("w") as log:
        job = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_batch_of(log_path, version, job)
        job.send_signal(signal.SIGKILL)
        job.wait(30)
    finally:
        if job.poll() is None:
            job.kill()
    progress = read_progress(p.settings.postgres, stream_target(p.table))
    assert progress is None or progress.completed_version is None or progress.completed_version < version
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run_until_caught_up(p.settings, p.table.topic_name, timeout_s=120)
    assert p.target_rows() == p.delta_rows()


def _wait_for_batch_of(log_path: Path, version: int, job: subprocess.Popen[Any], timeout_s: float = 240) -> None:
    """Until the job logged a published batch of `version` (the split commit has many more)."""
    wanted = f'"max_version": {version}'
    wait_until(
        lambda: any('"batch published"' in line and wanted in line for line in log_path.read_text().splitlines()),
        timeout_s,
        f"a published batch of version {version}",
        interval_s=0.05,
        alive=lambda: job.poll() is None,
        details=lambda: log_path.read_text()[-3000:],
    )
