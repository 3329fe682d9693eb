"""A pipeline whose Delta table, lookup and state_dir are on the session's S3 server (SeaweedFS)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from deploy.embedded_stack import EmbeddedStack
from lakesync.config import LakesyncSettings, TableMapping
from tests.support.pipeline import Pipeline


@pytest.fixture
def s3_pipeline(
    spark: Any, make_settings: Callable[..., LakesyncSettings], unique_name: str, embedded_stack: EmbeddedStack
) -> Callable[..., Pipeline]:
    """Factory: like `pipeline`, but every location is an s3a:// URI in the test's own prefix."""
    s3 = embedded_stack.s3

    def make(**table_fields: Any) -> Pipeline:
        table_fields.setdefault("key_columns", ["id"])
        table = TableMapping(
            name=unique_name,
            source_path=s3.url(unique_name, "lake", "people"),
            target_table=unique_name,
            topic=f"{unique_name}.changes",
            **table_fields,
        )
        settings = make_settings(
            tables=[table],
            state_dir=s3.url(unique_name, "state"),
            consumer={"group_id": f"g-{unique_name}", "batch_max_wait_s": 0.2, "session_timeout_s": 6.0},
        )
        return Pipeline(spark, settings, table)

    return make
