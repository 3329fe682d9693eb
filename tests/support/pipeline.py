"""A whole pipeline (stream job + consumer) per test, on a fresh Delta path, topic, target and group.

Registered as the `pipeline` fixture by tests/integration/conftest.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from lakesync.config import LakesyncSettings, TableMapping
from streaming.publisher.job import StreamJob
from streaming.publisher.micro_batch import BatchReport
from tests.support.consumer_run import run_until_caught_up


@dataclass
class Pipeline:
    spark: Any
    settings: LakesyncSettings
    table: TableMapping
    reports: list[BatchReport] = field(default_factory=list)

    def sync(self) -> None:
        """Publish every committed change, then let the consumer apply all of it."""
        StreamJob(self.settings, self.settings.tables, once=True, on_report=[self.reports.append]).run(self.spark)
        run_until_caught_up(self.settings, self.table.topic_name, timeout_s=120)

    def delta_rows(self) -> set[tuple[Any, ...]]:
        """The Delta table's rows now, as tuples in column order (test tables are small)."""
        frame = self.spark.read.format("delta").load(self.table.source)
        return {tuple(r) for r in frame.toLocalIterator()}

    def target_rows(self) -> set[tuple[Any, ...]]:
        """The target's rows without lakesync's bookkeeping columns, in the source's column order."""
        names = self.spark.read.format("delta").load(self.table.source).columns
        columns = sql.SQL(", ").join(sql.Identifier(n) for n in names)
        with psycopg.connect(**self.settings.postgres.connection_kwargs()) as conn:
            target = sql.Identifier(self.table.target_schema, self.table.target_table)
            return set(conn.execute(sql.SQL("SELECT {} FROM {}").format(columns, target)).fetchall())

    def sql(self, statement: str) -> None:
        """Spark SQL with {t} standing for the Delta source table."""
        self.spark.sql(statement.replace("{t}", f"delta.`{self.table.source}`"))

    def pg(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        """PostgreSQL with {t} standing for the target table."""
        with psycopg.connect(**self.settings.postgres.connection_kwargs()) as conn:
            # Plain replace, not sql.SQL.format: the statements hold JSON literals with braces.
            target = sql.Identifier(self.table.target_schema, self.table.target_table).as_string(conn)
            cursor = conn.execute(statement.replace("{t}", target), params or None)
            return cursor.fetchall() if cursor.description else []


@pytest.fixture
def pipeline(
    spark: Any, make_settings: Callable[..., LakesyncSettings], unique_name: str, tmp_path: Path
) -> Callable[..., Pipeline]:
    """Factory: a table mapping on a fresh Delta path, with its own topic, target and group."""

    def make(**table_fields: Any) -> Pipeline:
        table_fields.setdefault("key_columns", ["id"])
        table = TableMapping(
            name=unique_name,
            source_path=str(tmp_path / "lake" / unique_name),
            target_table=unique_name,
            topic=f"{unique_name}.changes",
            **table_fields,
        )
        settings = make_settings(
            tables=[table],
            consumer={
                "group_id": f"g-{unique_name}",
                "batch_max_wait_s": 0.2,
                "session_timeout_s": 6.0,
                "retry_deadline_s": 60.0,
                "retry_max_backoff_s": 2.0,
            },
        )
        return Pipeline(spark, settings, table)

    return make
