"""lakesync's Spark jobs on a real standalone cluster (a master and two worker JVMs), submitted with
spark-submit as deploy/README.md documents, with the Delta table and state_dir on the S3 server:
the executors run lakesync from the shipped wheel and packed environment, and losing a worker
mid-stream loses nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streaming.publisher.progress import read_progress
from streaming.publisher.state_store import stream_target
from tests.support.cluster_job import ClusterJob
from tests.support.consumer_run import run_until_caught_up
from tests.support.stream_topics import events, read_new, read_topic
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def write(spark: Any, path: str, ids: range, mode: str = "overwrite") -> None:
    frame = spark.range(ids.start, ids.stop, numPartitions=1).selectExpr("id", "concat('n', id) AS name")
    frame.write.format("delta").mode(mode).option("delta.enableChangeDataFeed", "true").save(path)


def test_stream_reconcile_and_rebuild_run_on_the_cluster(
    cluster_job: Callable[..., ClusterJob], spark: Any, tmp_path: Path
) -> None:
    job = cluster_job()
    p, name = job.pipeline, job.pipeline.table.name
    write(spark, p.table.source, range(2000))
    assert job.run("stream", "--once", log=tmp_path / "stream.log") == 0
    run_until_caught_up(p.settings, p.table.topic_name)
    assert p.target_rows() == p.delta_rows()

    p.pg("UPDATE {t} SET name = 'drifted' WHERE id = 3")
    assert job.run("reconcile", "--table", name, "--repair", log=tmp_path / "repair.log") == 4
    run_until_caught_up(p.settings, p.table.topic_name)
    assert job.run("reconcile", "--table", name, log=tmp_path / "reconcile.log") == 0

    p.sql("UPDATE {t} SET name = 'before-rebuild' WHERE id < 5")
    assert job.run("rebuild", "--table", name, log=tmp_path / "rebuild.log") == 0
    assert p.target_rows() == p.delta_rows()
    before = read_topic(p.settings.kafka, p.table.topic_name)
    p.sql("UPDATE {t} SET name = 'after-rebuild' WHERE id = 7")
    assert job.run("stream", "--once", log=tmp_path / "resume.log") == 0
    assert [e.key for e in events(read_new(p.settings.kafka, p.table.topic_name, before))] == [(7,)]
    run_until_caught_up(p.settings, p.table.topic_name)
    assert p.target_rows() == p.delta_rows()


def test_a_worker_killed_mid_stream_loses_nothing(
    cluster_job: Callable[..., ClusterJob], spark: Any, tmp_path: Path
) -> None:
    """SIGKILL one worker (with its executor) while the stream publishes: PostgreSQL ends equal to Delta."""
    job = cluster_job(max_files_per_trigger=1)  # one commit per micro-batch: the stream runs a while
    p = job.pipeline
    write(spark, p.table.source, range(3000))
    for start in range(3000, 36_000, 3000):
        write(spark, p.table.source, range(start, start + 3000), mode="append")
    latest = 11
    stream = job.start("stream", "--once", log=tmp_path / "stream.log")
    try:
        wait_until(lambda: _published(p) >= 1 or stream.poll() is not None, 240, "the first published batches")
        assert stream.poll() is None, (tmp_path / "stream.log").read_text()[-3000:]
        published_at_kill = _published(p)
        job.cluster.kill_worker("worker-1")
        assert stream.wait(600) == 0, (tmp_path / "stream.log").read_text()[-3000:]
    finally:
        if stream.poll() is None:
            stream.kill()
        job.cluster.start_worker("worker-1")  # the next tests get two workers again
    assert published_at_kill < latest, "the worker died after the stream had finished"
    run_until_caught_up(p.settings, p.table.topic_name, timeout_s=120)
    assert p.pg("SELECT count(*), sum(id) FROM {t}") == [(36_000, sum(range(36_000)))]
    assert p.target_rows() == p.delta_rows()


def _published(p: Any) -> int:
    progress = read_progress(p.settings.postgres, stream_target(p.table))
    return -1 if progress is None or progress.published_version is None else progress.published_version
