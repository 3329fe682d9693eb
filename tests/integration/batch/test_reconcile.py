"""Reconcile finds every kind of drift exactly, repairs it, and sees none while streaming runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from batch.reconcile import reconcile
from streaming.publisher.job import StreamJob
from tests.support.consumer_run import running, wait_caught_up
from tests.support.pipeline import Pipeline
from tests.support.rich_rows import COLUMN_NAMES, SCHEMA, row
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

# One PostgreSQL edit per drifted row, each touching exactly one column (or the whole row).
EDITS = {
    2: ("flag", "UPDATE {t} SET flag = NOT flag WHERE id = 2"),
    3: ("small", "UPDATE {t} SET small = small + 1 WHERE id = 3"),
    4: ("price", "UPDATE {t} SET price = price + 0.0001 WHERE id = 4"),  # last digit of the scale
    5: ("ratio", "UPDATE {t} SET ratio = 0.1000000000000001 WHERE id = 5"),  # 0.1 one ulp away
    6: ("single", "UPDATE {t} SET single = single + 0.5 WHERE id = 6"),
    7: ("name", "UPDATE {t} SET name = '' WHERE id = 7"),
    8: ("photo", "UPDATE {t} SET photo = '\\x00ff09'::bytea WHERE id = 8"),
    9: ("born", "UPDATE {t} SET born = born + 1 WHERE id = 9"),
    10: ("seen", "UPDATE {t} SET seen = '2026-01-02 03:04:05.123456-03' WHERE id = 10"),  # same clock, other zone
    11: ("local", "UPDATE {t} SET local = local + interval '1 microsecond' WHERE id = 11"),
    12: ("tags", """UPDATE {t} SET tags = '["x", null, "y"]' WHERE id = 12"""),
    13: ("scores", """UPDATE {t} SET scores = '{"a": 0.0, "z": 13.5}' WHERE id = 13"""),
    14: ("address", """UPDATE {t} SET address = '{"city": "Sao Paulo", "zip": 1014}' WHERE id = 14"""),
}


def test_every_kind_of_drift_is_found_named_and_repaired(pipeline: Callable[..., Pipeline], spark: Any) -> None:
    p = pipeline()
    spark.createDataFrame([row(i) for i in range(1, 21)] + [row(21, name=None)], SCHEMA).write.format("delta").option(
        "delta.enableChangeDataFeed", "true"
    ).save(p.table.source)
    p.sync()
    clean = reconcile(spark, p.settings, p.table)
    assert clean.counts.drift == 0 and clean.counts.equal == 21, clean.to_json()

    p.pg("DELETE FROM {t} WHERE id = 1")
    p.pg("INSERT INTO {t} (id, name, _lakesync_version) VALUES (999, 'ghost', 0)")
    for _, statement in EDITS.values():
        p.pg(statement)
    p.pg("UPDATE {t} SET name = '' WHERE id = 21")  # null in the source, empty string here

    drifted = reconcile(spark, p.settings, p.table, sample_size=50)
    counts = drifted.counts
    assert (counts.missing_in_target, counts.extra_in_target, counts.different) == (1, 1, len(EDITS) + 1)
    assert counts.equal == 21 - 1 - len(EDITS) - 1
    by_key = {entry["key"]["id"]: entry for entry in drifted.sample}
    assert by_key[1]["kind"] == "missing_in_target" and by_key[999]["kind"] == "extra_in_target"
    for key, (column, _) in EDITS.items():
        assert list(by_key[key]["columns"]) == [column], (key, by_key[key])
    assert by_key[21]["columns"] == {"name": {"source": None, "target": ""}}
    assert by_key[4]["columns"]["price"] == {"source": "50.0000", "target": "50.0001"}

    repaired = reconcile(spark, p.settings, p.table, repair=True)
    assert repaired.repaired == len(EDITS) + 3
    wait_caught_up_after_repair(p)
    after = reconcile(spark, p.settings, p.table)
    assert after.counts.drift == 0 and after.counts.equal == 21, after.to_json()
    assert p.pg("SELECT count(*) FROM {t} WHERE id = 999") == [(0,)]


def test_the_sample_of_a_table_keyed_by_a_date_names_the_drifted_column(
    pipeline: Callable[..., Pipeline], spark: Any
) -> None:
    """Keys whose JSON is not their exact value (a date here) are sampled by a full scan of each
    side instead of a filter on the key columns; the report is the same."""
    p = pipeline(key_columns=["born", "id"])
    spark.createDataFrame([row(i) for i in range(1, 6)], SCHEMA).write.format("delta").option(
        "delta.enableChangeDataFeed", "true"
    ).save(p.table.source)
    p.sync()
    p.pg("UPDATE {t} SET name = 'drifted' WHERE id = 3")
    drifted = reconcile(spark, p.settings, p.table)
    assert drifted.counts.different == 1 and drifted.counts.equal == 4, drifted.to_json()
    (entry,) = drifted.sample
    assert entry["key"]["id"] == 3 and set(entry["key"]) == {"born", "id"}
    assert entry["columns"] == {"name": {"source": row(3)[COLUMN_NAMES.index("name")], "target": "drifted"}}


def wait_caught_up_after_repair(p: Pipeline) -> None:
    with running(p.settings):
        wait_caught_up(p.settings, p.table.topic_name, 120)


def test_reconcile_during_live_streaming_reports_no_false_drift(pipeline: Callable[..., Pipeline], spark: Any) -> None:
    """Changes keep landing while reconcile runs; what is newer than its version is not drift."""
    p = pipeline()
    spark.createDataFrame([(i, f"n{i}") for i in range(300)], "id long, name string").write.format("delta").option(
        "delta.enableChangeDataFeed", "true"
    ).save(p.table.source)
    p.sync()
    stop = threading.Event()
    job = StreamJob(
        p.settings.model_copy(update={"stream": p.settings.stream.model_copy(update={"trigger_interval_s": 0.5})}),
        p.settings.tables,
    )
    streamer = threading.Thread(target=lambda: job.run(spark), daemon=True)
    writer = threading.Thread(target=_keep_writing, args=(p, stop), daemon=True)
    with running(p.settings):
        streamer.start()
        writer.start()
        try:
            # Changes in flight on every stage: some written since the sync already reached PostgreSQL.
            wait_until(
                lambda: p.pg("SELECT count(*) FROM {t} WHERE name LIKE 'w%'")[0][0] > 0, 60, "live changes applied"
            )
            result = reconcile(spark, p.settings, p.table, wait_s=120)
        finally:
            stop.set()
            writer.join(60)
            job.request_stop()
            streamer.join(120)
    assert result.counts.drift == 0, result.to_json()
    assert result.pinned_by == "stream progress"


def _keep_writing(p: Pipeline, stop: threading.Event) -> None:
    i = 0
    while not stop.is_set():
        p.sql(f"UPDATE {{t}} SET name = 'w{i}' WHERE id % 10 = {i % 10}")
        if i % 3 == 0:
            p.sql(f"DELETE FROM {{t}} WHERE id = {i}")
            p.sql(f"INSERT INTO {{t}} VALUES ({1000 + i}, 'new{i}')")
        i += 1
        time.sleep(0.5)


def test_cli_exits_4_on_drift_and_writes_the_report(
    pipeline: Callable[..., Pipeline], spark: Any, tmp_path: Path, embedded_stack: Any
) -> None:
    import json
    import os
    import subprocess
    import sys

    p = pipeline()
    spark.createDataFrame([(i, f"n{i}") for i in range(10)], "id long, name string").write.format("delta").option(
        "delta.enableChangeDataFeed", "true"
    ).save(p.table.source)
    p.sync()
    p.pg("UPDATE {t} SET name = 'drifted' WHERE id = 3")
    env = {
        **os.environ,
        "LAKESYNC_TABLES": "[" + p.table.model_dump_json() + "]",
        "LAKESYNC_STATE_DIR": str(p.settings.state_dir),
        "LAKESYNC_CONSUMER": json.dumps({"group_id": p.settings.consumer.group_id}),
        "LAKESYNC_SPARK": '{"ui_enabled": false, "shuffle_partitions": 2, "driver_memory": "1g"}',
    }
    report = tmp_path / "report.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "lakesync",
            "--config",
            str(embedded_stack.config_file),
            "reconcile",
            "--table",
            p.table.name,
            "--report",
            str(report),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 4, done.stdout + done.stderr
    body = json.loads(report.read_text())
    assert body["in_sync"] is False and body["counts"]["different"] == 1
    assert body["sample"] == [
        {"key": {"id": 3}, "kind": "different", "columns": {"name": {"source": "n3", "target": "drifted"}}}
    ]
    assert "different" in done.stdout and "1" in done.stdout
