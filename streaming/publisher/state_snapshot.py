"""The state snapshot: what lakesync has published for each key of one table.

Two Delta tables next to the table's checkpoint:

    base  (key, row_hash, version)            one row per live key, rewritten by compaction
    log   (key, row_hash, version, deleted)   appended after every published batch

The current state of a key is its newest entry across both (a log delete hides the key). A
batch's diff looks up only the keys it touches (`state_for`). Appending is cheap (a Delta MERGE
costs seconds of fixed overhead per batch, an append a fraction of one); every
`stream.snapshot_compact_every` batches the log is folded into the base. Folding is idempotent:
the newest version wins, so a crash between rewriting base and emptying log changes nothing.

The base is seeded once from PostgreSQL (a partitioned parallel JDBC read of the target table).

Crash safety of a batch: it is published first and appended to the log second. A crash between
the two replays the batch against the old state and republishes the same events (harmless: the
consumer's version guard skips them); after the append, a replay finds every key equal.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from changes.row_hash import row_hash_column
from connectors.postgres_read import align_to_schema, existing_table, read_table
from connectors.postgres_schema import VERSION_COLUMN, TableRef
from connectors.spark import column
from lakesync.config import PostgresSettings, TableMapping
from lakesync.logs import get_logger
from streaming.publisher.envelope_spark import key_json

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

KEY, ROW_HASH, VERSION, DELETED = "key", "row_hash", "version", "deleted"
BASE_DDL = "key STRING NOT NULL, row_hash BIGINT, version BIGINT NOT NULL"
LOG_DDL = BASE_DDL + ", deleted BOOLEAN NOT NULL"

log = get_logger(__name__)


class StateSnapshot:
    def __init__(self, spark: SparkSession, path: Path) -> None:
        self.spark = spark
        self.path = path
        # True only when this process emptied the state itself: lookups can be skipped.
        self._known_empty = False

    @property
    def base_path(self) -> str:
        return str(self.path / "base")

    @property
    def log_path(self) -> str:
        return str(self.path / "log")

    def exists(self) -> bool:
        return (self.path / "base" / "_delta_log").is_dir() and (self.path / "log" / "_delta_log").is_dir()

    def seed(self, pg: PostgresSettings, table: TableMapping, target_schema: StructType) -> int:
        """Create the snapshot from the target table's rows (empty if the table is missing)."""
        ref = TableRef(table.target_schema, table.target_table)
        target = existing_table(pg, ref)
        if target is None or VERSION_COLUMN not in target.columns:
            rows = self.spark.createDataFrame([], BASE_DDL)
        else:
            names = [f.name for f in target_schema.fields] + [VERSION_COLUMN]
            raw = read_table(self.spark, pg, ref, target, names, table.key_columns)
            rows = snapshot_rows(align_to_schema(raw, target_schema), target_schema, table.key_columns)
        self.reset(rows)
        count = self._base().count()
        log.info("state snapshot seeded", table=table.name, rows=count, from_postgres=target is not None)
        return count

    def reset(self, base_rows: DataFrame) -> None:
        """Replace the whole state with `base_rows` (key, row_hash, version); empty log."""
        _overwrite(base_rows, self.base_path)
        _overwrite(self.spark.createDataFrame([], LOG_DDL), self.log_path)
        self._known_empty = self._base().isEmpty()

    def state_for(self, keys: DataFrame, *, small: bool) -> DataFrame:
        """(key, row_hash, version) of the live keys among `keys` (a frame with a `key` column).

        `small`: few keys, so they are broadcast and the base is filtered where it is read
        instead of being shuffled (the base holds every key of the table).
        """
        from pyspark.sql import functions as F

        if self._known_empty:
            return self.spark.createDataFrame([], BASE_DDL)
        wanted = F.broadcast(keys.select(KEY)) if small else keys.select(KEY)
        return self._live(self._base().join(wanted, KEY, "left_semi"), self._log().join(wanted, KEY, "left_semi"))

    def append(self, entries: DataFrame) -> None:
        """Record published changes: rows of (key, row_hash, version, deleted)."""
        entries.write.format("delta").mode("append").save(self.log_path)
        self._known_empty = False

    def compact(self) -> bool:
        """Fold the log into the base (newest entry per key wins; deleted keys disappear).

        A concurrent append (a reconcile repair) can make Delta refuse the rewrite; the log then
        simply stays unfolded until the next compaction. Returns whether it folded.
        """
        try:
            _overwrite(self._live(self._base(), self._log()), self.base_path)
            _overwrite(self.spark.createDataFrame([], LOG_DDL), self.log_path)
        except Exception as exc:
            if not _is_concurrent_write(exc):
                raise
            log.info("state snapshot compaction deferred: concurrent write", condition=exc.getCondition())  # type: ignore[attr-defined]
            return False
        return True

    def _base(self) -> DataFrame:
        return self.spark.read.format("delta").load(self.base_path)

    def _log(self) -> DataFrame:
        return self.spark.read.format("delta").load(self.log_path)

    @staticmethod
    def _live(base: DataFrame, logged: DataFrame) -> DataFrame:
        """Newest entry per key across base and log; keys whose newest entry is a delete vanish."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        entries = base.select(KEY, ROW_HASH, VERSION, F.lit(False).alias(DELETED)).unionByName(logged)
        # On a version tie (a replayed batch) a delete outranks an upsert: never resurrect.
        newest = Window.partitionBy(KEY).orderBy(F.col(VERSION).desc(), F.col(DELETED).desc())
        latest = entries.select("*", F.row_number().over(newest).alias("_n")).where("_n = 1")
        return latest.where(~F.col(DELETED)).select(KEY, ROW_HASH, VERSION)


def snapshot_rows(frame: DataFrame, target_schema: StructType, key_columns: list[str]) -> DataFrame:
    """(key, row_hash, version) of target-mapped rows carrying `_lakesync_version`."""
    return frame.select(
        key_json(target_schema, key_columns).alias(KEY),
        row_hash_column(target_schema).alias(ROW_HASH),
        column(VERSION_COLUMN).cast("long").alias(VERSION),
    )


def _is_concurrent_write(exc: Exception) -> bool:
    """Delta's optimistic-concurrency conflicts (DELTA_CONCURRENT_APPEND, _DELETE_READ, ...)."""
    condition = getattr(exc, "getCondition", lambda: None)()
    return isinstance(condition, str) and condition.startswith("DELTA_CONCURRENT")


def _overwrite(rows: DataFrame, path: str) -> None:
    rows.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)
