"""The real driver JVM's logging arrives as lakesync log lines, nothing on the terminal directly."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def test_a_jvm_warning_becomes_a_lakesync_log_line_and_info_stays_below_the_threshold(spark: Any) -> None:
    logger = spark._jvm.org.apache.logging.log4j.LogManager.getLogger("lakesync.test.console")
    with capture_logs() as logs:
        logger.info("below the threshold")
        logger.warn("from the jvm")
        wait_until(
            lambda: any(entry["event"] == "from the jvm" for entry in logs), 10, "the JVM's line", interval_s=0.1
        )
    mine = [entry for entry in logs if entry.get("spark_logger") == "lakesync.test.console"]
    assert [(entry["log_level"], entry["event"]) for entry in mine] == [("warning", "from the jvm")]
