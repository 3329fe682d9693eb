"""A source table as it was at one Delta version, through its table mapping.

Reconcile and rebuild both work on one pinned version, so every row they read, compare or load
belongs to the same consistent snapshot, whatever the table's writers do meanwhile. The rows
come out exactly as the streaming job maps them (same projection, lookups and quarantine
reasons), so their canonical hashes compare with PostgreSQL's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from batch.errors import VersionError
from connectors.spark_types import target_columns
from lakesync.config import TableMapping
from streaming.publisher import source
from streaming.publisher.mapping import (
    CHANGE_TYPE,
    COMMIT_TIMESTAMP,
    COMMIT_VERSION,
    CompiledMapping,
    compile_mapping,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType


@dataclass(frozen=True)
class PinnedSource:
    table: TableMapping
    version: int
    commit_ts: dt.datetime | None
    # Target-mapped rows plus the feed metadata columns and `_ls_problem` (mapping.py).
    rows: DataFrame
    schema: StructType
    # The Delta table's own schema at the version (before mapping).
    source_schema: StructType


def pin(spark: SparkSession, table: TableMapping, version: int | None = None) -> PinnedSource:
    """The table at `version` (default: its latest), mapped to the target's columns."""
    from pyspark.sql import functions as F

    latest = source.latest_version(spark, table)
    pinned = latest if version is None else version
    if not 0 <= pinned <= latest:
        raise VersionError(f"table {table.name!r}: version {pinned} does not exist (latest is {latest})")
    commit_ts = _commit_timestamp(spark, table, pinned)
    reader = spark.read.format("delta").option("versionAsOf", str(pinned))
    frame = reader.load(table.source_path) if table.source_path else reader.table(table.source)
    feed = frame.select(
        "*",
        F.lit("insert").alias(CHANGE_TYPE),
        F.lit(pinned).cast("long").alias(COMMIT_VERSION),
        F.lit(commit_ts).cast("timestamp").alias(COMMIT_TIMESTAMP),
    )
    mapped = compile_mapping(spark, table).apply(feed)
    schema = CompiledMapping.target_schema(mapped)
    target_columns(schema)  # unsupported types fail here, naming the column
    return PinnedSource(table, pinned, commit_ts, mapped, schema, frame.schema)


def _commit_timestamp(spark: SparkSession, table: TableMapping, version: int) -> dt.datetime | None:
    """When `version` was committed (metadata), or None if the log no longer says."""
    from delta.tables import DeltaTable

    delta = (
        DeltaTable.forPath(spark, table.source_path) if table.source_path else DeltaTable.forName(spark, table.source)
    )
    row = delta.history().where(f"version = {int(version)}").select("timestamp").first()
    return row["timestamp"] if row else None
