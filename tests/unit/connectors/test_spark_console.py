"""Spark's console output becomes lakesync's log lines: JSON events at their level, the rest at DEBUG."""

from __future__ import annotations

import io
import json
import logging
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from connectors import spark_console
from connectors.spark import DRIVER_JAVA_OPTIONS, derived_conf
from lakesync.config import SparkSettings


@pytest.fixture
def jars_dir(tmp_path: Path) -> Path:
    for name in ("delta-spark_4.2_2.13-4.4.0.jar", "delta-storage-4.4.0.jar", "postgresql-42.7.14.jar"):
        (tmp_path / name).write_bytes(b"")
    return tmp_path


def event(level: str, message: str, **extra: str) -> bytes:
    return (json.dumps({"level": level, "logger": "org.apache.spark.X", "message": message, **extra}) + "\n").encode()


@pytest.fixture
def every_level() -> Iterator[None]:
    """DEBUG lines reach capture_logs whatever level an earlier test configured logging at."""
    previous = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    yield
    structlog.configure(**previous)


@pytest.mark.usefixtures("every_level")
def test_log4j_events_keep_their_level_and_other_output_goes_to_debug() -> None:
    output = io.BytesIO(
        b"WARNING: Using incubator modules: jdk.incubator.vector\n"
        + event("WARN", "disk almost full")
        + event("ERROR", "task failed", exception="java.io.IOException", exception_message="boom", stack="at x\nat y")
    )
    recent: deque[str] = deque(maxlen=5)
    with capture_logs() as logs:
        spark_console._forward(output, recent)
    assert [(entry["log_level"], entry["event"]) for entry in logs] == [
        ("debug", "spark output"),
        ("warning", "disk almost full"),
        ("error", "task failed"),
        ("debug", "spark stack trace"),
    ]
    assert logs[2]["error"] == "java.io.IOException: boom" and logs[2]["spark_logger"] == "org.apache.spark.X"
    assert list(recent) == ["WARNING: Using incubator modules: jdk.incubator.vector"]


def test_the_driver_jvm_gets_lakesyncs_log4j2_file_at_the_configured_level(jars_dir: Path) -> None:
    conf = derived_conf(SparkSettings(jars_dir=jars_dir, log_level="ERROR"), cores=2)
    options = conf[DRIVER_JAVA_OPTIONS]
    assert f"-Dlog4j2.configurationFile={spark_console.LOG4J2_CONFIG.as_uri()}" in options
    assert "-Dlakesync.spark.logLevel=error" in options
    assert spark_console.LOG4J2_CONFIG.is_file()


def test_user_jvm_options_add_to_the_logging_setup_and_can_replace_it(jars_dir: Path) -> None:
    added = derived_conf(SparkSettings(jars_dir=jars_dir, conf={DRIVER_JAVA_OPTIONS: "-XX:+UseG1GC"}), cores=2)
    assert (
        added[DRIVER_JAVA_OPTIONS].endswith(" -XX:+UseG1GC")
        and "log4j2.configurationFile" in added[DRIVER_JAVA_OPTIONS]
    )
    own = "-Dlog4j2.configurationFile=file:/etc/mine.properties"
    replaced = derived_conf(SparkSettings(jars_dir=jars_dir, conf={DRIVER_JAVA_OPTIONS: own}), cores=2)
    assert replaced[DRIVER_JAVA_OPTIONS] == own


def test_under_spark_submit_the_jvm_is_left_as_it_was_started() -> None:
    assert DRIVER_JAVA_OPTIONS not in derived_conf(SparkSettings(), cores=2, submitted=True)
