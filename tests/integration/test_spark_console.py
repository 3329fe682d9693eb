"""The real driver JVM's logging arrives as lakesync log lines, nothing on the terminal directly."""

from __future__ import annotations

import time
from typing import Any

import pytest
from structlog.testing import capture_logs

pytestmark = pytest.mark.integration


def test_a_jvm_warning_becomes_a_lakesync_log_line_and_info_stays_below_the_threshold(spark: Any) -> None:
    logger = spark._jvm.org.apache.logging.log4j.LogManager.getLogger("lakesync.test.console")
    with capture_logs() as logs:
        logger.info("below the threshold")
        logger.warn("from the jvm")
        deadline = time.monotonic() + 10
        while not any(entry["event"] == "from the jvm" for entry in logs) and time.monotonic() < deadline:
            time.sleep(0.1)
    mine = [entry for entry in logs if entry.get("spark_logger") == "lakesync.test.console"]
    assert [(entry["log_level"], entry["event"]) for entry in mine] == [("warning", "from the jvm")]
