"""Spark and Delta work together from local jars, change data feed included."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from lakesync.config import LakesyncSettings

pytestmark = pytest.mark.integration


def test_pinned_pyspark_and_delta_jar_are_a_pair(spark: Any, settings: LakesyncSettings) -> None:
    """The delta jar on spark.jars is built for the running Spark's minor version."""
    spark_minor = ".".join(spark.version.split(".")[:2])
    jars = spark.conf.get("spark.jars")
    assert f"delta-spark_{spark_minor}_2.13-" in jars
    assert spark.version == version("pyspark")
    assert f"-{version('delta-spark')}.jar" in jars
    assert str(settings.spark.jars_dir) in jars
    assert spark.conf.get("spark.jars.packages", None) in (None, "")


def test_change_data_feed_round_trip(spark: Any, tmp_path: Path) -> None:
    """Insert, update and delete commits come back from readChangeFeed with their versions."""
    from delta.tables import DeltaTable

    path = str(tmp_path / "people")
    (
        spark.createDataFrame([(1, "ana"), (2, "bia"), (3, "caio")], "id long, name string")
        .write.format("delta")
        .option("delta.enableChangeDataFeed", "true")
        .save(path)
    )
    table = DeltaTable.forPath(spark, path)
    table.update("id = 2", {"name": "'beatriz'"})
    table.delete("id = 3")

    changes = (
        spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", 0)
        .load(path)
        .select("id", "name", "_change_type", "_commit_version")
    )
    # Four columns of a handful of rows: a test-sized result, safe to bring to the driver.
    got = sorted(tuple(r) for r in changes.toLocalIterator())
    assert got == sorted(
        [
            (1, "ana", "insert", 0),
            (2, "bia", "insert", 0),
            (3, "caio", "insert", 0),
            (2, "bia", "update_preimage", 1),
            (2, "beatriz", "update_postimage", 1),
            (3, "caio", "delete", 2),
        ]
    )


def test_session_settings_follow_the_machine(spark: Any) -> None:
    """Adaptive execution on, UI off in tests, UTC session time zone, jars local."""
    assert spark.conf.get("spark.sql.adaptive.enabled") == "true"
    assert spark.conf.get("spark.ui.enabled") == "false"
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.conf.get("spark.sql.shuffle.partitions") == "2"
