"""Fixtures of the streaming job's tests (helpers: tests/support/stream_topics.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lakesync.config import LakesyncSettings, TableMapping


@pytest.fixture
def delta_path(tmp_path: Path) -> Callable[[str], str]:
    return lambda name: str(tmp_path / "lake" / name)


@pytest.fixture
def mapping(unique_name: str, delta_path: Callable[[str], str]) -> Callable[..., TableMapping]:
    """Factory for a table mapping with a unique topic and target table."""

    def make(name: str = "people", **fields: Any) -> TableMapping:
        fields.setdefault("key_columns", ["id"])
        return TableMapping(
            name=name,
            source_path=delta_path(f"{unique_name}_{name}"),
            target_table=f"{unique_name}_{name}",
            topic=f"{unique_name}.{name}",
            **fields,
        )

    return make


@pytest.fixture
def run_once(spark: Any) -> Callable[[LakesyncSettings], None]:
    """Run the streaming job with availableNow in this process's SparkSession."""
    from streaming.publisher.job import StreamJob

    def run(settings: LakesyncSettings) -> None:
        StreamJob(settings, settings.tables, once=True).run(spark)

    return run
