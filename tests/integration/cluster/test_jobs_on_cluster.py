"""lakesync's Spark jobs on a real standalone cluster (a master and two worker JVMs), submitted with
spark-submit as deploy/README.md documents, with the Delta table and state_dir on the S3 server:
the executors run lakesync from the shipped wheel and packed environment, and losing a worker
mid-stream loses nothing."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster_job import ClusterJob
from tests.support.consumer_run import run_until_caught_up
from tests.support.stream_topics import read_new, read_topic
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def write(spark: Any, path: str, ids: range, mode: str = "overwrite") -> None:
    frame = spark.range(ids.start, ids.stop, numPartitions=1).selectExpr("id", "concat('n', id) AS name")
    frame.write.format("delta").mode(mode).option("delta.enableChangeDataFeed", "true").save(path)


def test_stream_through_a_worker_kill_then_reconcile_and_rebuild_on_the_cluster(
    cluster_job: Callable[..., ClusterJob], spark: Any, tmp_path: Path
) -> None:
    """One table through every job kind on the cluster (each spark-submit costs about a minute here).

    The stream reads an initial snapshot of 12 files one file per micro-batch; one worker is
    SIGKILLed (with its executor) after the first batch: the job finishes on the other worker and
    PostgreSQL ends equal to Delta. Then `reconcile --repair` finds and repairs a drifted row, and
    `rebuild` reloads the table."""
    job = cluster_job(max_files_per_trigger=1)
    p, name = job.pipeline, job.pipeline.table.name
    write(spark, p.table.source, range(3000))
    for start in range(3000, 36_000, 3000):
        write(spark, p.table.source, range(start, start + 3000), mode="append")
    log = tmp_path / "stream.log"
    stream = job.start("stream", "--once", log=log)
    try:
        wait_until(lambda: _batches(log) >= 1 or stream.poll() is not None, 240, "the first published batch")
        assert stream.poll() is None, log.read_text()[-3000:]
        batches_at_kill = _batches(log)
        job.cluster.kill_worker("worker-1")
        assert stream.wait(600) == 0, log.read_text()[-3000:]
    finally:
        if stream.poll() is None:
            stream.kill()
        job.cluster.start_worker("worker-1")  # the next jobs get two workers again
    assert batches_at_kill < _batches(log) == 12, "the worker died after the stream had finished"
    run_until_caught_up(p.settings, p.table.topic_name, timeout_s=120)
    assert p.pg("SELECT count(*), sum(id) FROM {t}") == [(36_000, sum(range(36_000)))]
    assert p.target_rows() == p.delta_rows()

    p.pg("UPDATE {t} SET name = 'drifted' WHERE id = 3")
    assert job.run("reconcile", "--table", name, "--repair", log=tmp_path / "repair.log") == 4
    run_until_caught_up(p.settings, p.table.topic_name)
    assert p.target_rows() == p.delta_rows()

    p.sql("UPDATE {t} SET name = 'before-rebuild' WHERE id < 5")
    before = read_topic(p.settings.kafka, p.table.topic_name)
    assert job.run("rebuild", "--table", name, log=tmp_path / "rebuild.log") == 0
    assert p.target_rows() == p.delta_rows()
    assert read_new(p.settings.kafka, p.table.topic_name, before) == [], "a rebuild loads PostgreSQL directly"


def _batches(log: Path) -> int:
    """Micro-batches the stream job has published so far (its `batch published` log lines)."""
    return log.read_text(errors="replace").count('"event": "batch published"') if log.exists() else 0


def test_the_shipped_code_has_a_name_executors_import_from(lakesync_wheel: Path) -> None:
    """pyspark adds only .zip/.egg/.jar files of spark.submit.pyFiles to the executors' sys.path:
    a .whl there is shipped, never imported from, and every Python task fails."""
    from pyspark.core.context import SparkContext

    assert lakesync_wheel.suffix in SparkContext.PACKAGE_EXTENSIONS
    assert zipfile.ZipFile(lakesync_wheel).getinfo("streaming/publisher/partition_publisher.py")
