"""The change data feed of one table mapping, as a Spark structured stream."""

from __future__ import annotations

from typing import TYPE_CHECKING

from connectors import delta_log
from connectors.delta_log import commit_actions
from lakesync.config import TableMapping
from streaming.publisher.errors import SourceError
from streaming.publisher.mapping import FEED_METADATA

if TYPE_CHECKING:
    from delta.tables import DeltaTable
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType


def change_feed(spark: SparkSession, table: TableMapping, *, starting_version: int | None = None) -> DataFrame:
    """readChangeFeed stream with the start version (a rebuild's, else the mapping's) and rate limits.

    The start version only matters for a fresh checkpoint: an existing one knows where it is.
    """
    reader = spark.readStream.format("delta").option("readChangeFeed", "true")
    start = starting_version if starting_version is not None else table.starting_version
    if start is not None:
        reader = reader.option("startingVersion", str(start))
    if table.max_files_per_trigger is not None:
        reader = reader.option("maxFilesPerTrigger", str(table.max_files_per_trigger))
    if table.max_bytes_per_trigger is not None:
        reader = reader.option("maxBytesPerTrigger", table.max_bytes_per_trigger)
    return reader.load(table.source_path) if table.source_path else reader.table(table.source)


def require_change_feed(spark: SparkSession, table: TableMapping) -> None:
    """Fail at start-up, naming the fix, when the table is missing or has CDF off."""
    detail = _delta_table(spark, table).detail().select("properties").first()
    properties = detail["properties"] if detail else {}
    if str(properties.get("delta.enableChangeDataFeed", "false")).lower() != "true":
        target = f"delta.`{table.source_path}`" if table.source_path else table.source
        raise SourceError(
            f"table {table.name!r}: change data feed is off on {table.source}; enable it with "
            f"ALTER TABLE {target} SET TBLPROPERTIES (delta.enableChangeDataFeed = true) and start "
            "the stream at a version after that commit (starting_version), or unset starting_version "
            "to begin with a full snapshot"
        )


def latest_version(spark: SparkSession, table: TableMapping) -> int:
    """The table's newest commit version (metadata only)."""
    row = _delta_table(spark, table).history(1).select("version").first()
    return int(row["version"]) if row else -1


def change_feed_files(spark: SparkSession, table: TableMapping, version: int) -> int | None:
    """How many files Delta's change-feed source indexes in commit `version` (None: log gone)."""
    actions = commit_actions(spark, location(spark, table), version)
    return None if actions is None else delta_log.change_feed_files(actions)


def location(spark: SparkSession, table: TableMapping) -> str:
    """Where the table's files are (its path, or the catalog table's location)."""
    if table.source_path:
        return table.source_path
    row = _delta_table(spark, table).detail().select("location").first()
    return str(row["location"]) if row else ""


def current_schema(spark: SparkSession, table: TableMapping) -> StructType:
    """The table's schema at its latest version, without the change feed's metadata columns."""
    from pyspark.sql import types as T

    reader = spark.read.format("delta")
    frame = reader.load(table.source_path) if table.source_path else spark.read.table(table.source)
    return T.StructType([f for f in frame.schema.fields if f.name not in FEED_METADATA])


def _delta_table(spark: SparkSession, table: TableMapping) -> DeltaTable:
    from delta.tables import DeltaTable
    from pyspark.errors import AnalysisException

    try:
        if table.source_path:
            return DeltaTable.forPath(spark, table.source_path)
        return DeltaTable.forName(spark, table.source)
    except AnalysisException as exc:
        raise SourceError(f"table {table.name!r}: no Delta table at {table.source} ({exc.getCondition()})") from None
