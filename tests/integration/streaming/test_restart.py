"""A SIGKILLed streaming job, restarted, loses nothing: the topic replays to the Delta table."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deploy.embedded_stack import EmbeddedStack
from lakesync.config import LakesyncSettings, TableMapping
from tests.support.stream_topics import create_delta, delta_sql, read_topic, replay
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def stream_command(stack: EmbeddedStack, settings: LakesyncSettings, *args: str) -> tuple[list[str], dict[str, str]]:
    env = {
        **os.environ,
        "LAKESYNC_TABLES": "[" + ",".join(t.model_dump_json() for t in settings.tables) + "]",
        "LAKESYNC_STATE_DIR": str(settings.state_dir),
        "LAKESYNC_SPARK": '{"ui_enabled": false, "shuffle_partitions": 2, "driver_memory": "1g"}',
        "LAKESYNC_STREAM": '{"trigger_interval_s": 0.5}',
    }
    return [
        sys.executable,
        "-m",
        "lakesync",
        "--config",
        str(stack.config_file),
        "--log-format",
        "json",
        "stream",
        *args,
    ], env


def delta_rows(spark: Any, path: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    # A 60-row test table: small enough to bring to the driver.
    return {(r["id"],): r.asDict() for r in spark.read.format("delta").load(path).toLocalIterator()}


def test_sigkill_mid_run_then_restart_loses_nothing(
    spark: Any,
    embedded_stack: EmbeddedStack,
    make_settings: Callable[..., LakesyncSettings],
    mapping: Callable[..., TableMapping],
    tmp_path: Path,
) -> None:
    table = mapping()
    settings = make_settings(tables=[table])
    create_delta(spark, table.source, [(i, f"n{i}", "c") for i in range(40)], "id long, name string, city string")
    command, env = stream_command(embedded_stack, settings)
    log_path = tmp_path / "stream.log"
    with log_path.open("w") as log:
        job = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for(log_path, '"batch published"', job)
        for i in range(6):  # commits land while the job runs; the kill hits somewhere in them
            delta_sql(spark, f"UPDATE {{t}} SET name = 'u{i}' WHERE id % 6 = {i}", table.source)
            if i == 2:
                delta_sql(spark, "DELETE FROM {t} WHERE id >= 35", table.source)
            if i == 3:
                job.send_signal(signal.SIGKILL)
        delta_sql(spark, "INSERT INTO {t} VALUES (100, 'late', 'c')", table.source)
    finally:
        job.kill()
        job.wait(30)
    rerun = subprocess.run([*command, "--once"], env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]

    published = replay(read_topic(settings.kafka, table.topic_name))
    assert published == delta_rows(spark, table.source)
    assert (100,) in published and (36,) not in published


def _wait_for(path: Path, marker: str, job: subprocess.Popen[bytes], timeout_s: float = 180.0) -> None:
    wait_until(
        lambda: marker in path.read_text(),
        timeout_s,
        marker,
        interval_s=0.5,
        alive=lambda: job.poll() is None,
        details=lambda: path.read_text()[-3000:],
    )
