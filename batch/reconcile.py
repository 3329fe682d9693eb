"""`lakesync reconcile`: a distributed full comparison of a Delta table and its PostgreSQL copy.

Both sides are hashed with the canonical row hash (changes/row_hash.py) in Spark
(streaming/publisher/row_hash_spark.py), then fully outer-joined on the canonical key. Only counts
and a bounded sample of differing keys ever reach the driver; the seed's CompareData collected
both tables instead.

Comparing while the pipeline runs without reporting false drift:

- the source is read at one pinned version V: by default the newest version the streaming job
  completely published (`lakesync.stream_progress`), else the table's latest;
- before reading PostgreSQL, reconcile waits until the consumer group has applied the topic up
  to its current end, so everything published for versions <= V is in PostgreSQL;
- PostgreSQL rows with `_lakesync_version` > V, and keys whose tombstone is newer than V, were
  changed after V: they are counted apart (`newer_in_target`, `deleted_after_pin`), not drift.

Every key lands in exactly one class:

    equal              same canonical hash on both sides
    different          both sides have the key, hashes differ            (drift)
    missing_in_target  only the source has it                            (drift)
    extra_in_target    only PostgreSQL has it (version <= V)             (drift)
    newer_in_target    PostgreSQL holds a change made after V
    deleted_after_pin  PostgreSQL deleted it after V (tombstone > V)
    unsyncable         source rows the mapping quarantines (null key, failed cast, NUL)
"""

from __future__ import annotations

import functools
import json
import operator
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from batch.comparison import DRIFT_KINDS, KEY, KIND, Comparison
from batch.pinned_source import PinnedSource, pin
from batch.repair import publish_repairs
from batch.spark_progress import spark_progress
from changes.envelope import SPARK_JSON_OPTIONS
from connectors.consumer_position import wait_for_consumer
from connectors.postgres_read import align_to_schema, existing_table, read_table
from connectors.postgres_schema import BOOKKEEPING_SCHEMA, VERSION_COLUMN, TableRef, tombstone_table_name
from connectors.spark import column
from lakesync.config import LakesyncSettings, TableMapping
from lakesync.logs import get_logger
from streaming.publisher.envelope_spark import json_ready, key_json
from streaming.publisher.mapping import PROBLEM
from streaming.publisher.progress import read_progress
from streaming.publisher.row_hash_spark import row_hash_column, token_column
from streaming.publisher.state_store import stream_target

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import StructType

log = get_logger(__name__)


@dataclass
class Counts:
    equal: int = 0
    different: int = 0
    missing_in_target: int = 0
    extra_in_target: int = 0
    newer_in_target: int = 0
    deleted_after_pin: int = 0
    unsyncable: int = 0

    @property
    def drift(self) -> int:
        return self.different + self.missing_in_target + self.extra_in_target


@dataclass
class ReconcileResult:
    table: str
    target: str
    version: int
    pinned_by: str
    counts: Counts
    sample: list[dict[str, Any]] = field(default_factory=list)
    repaired: int = 0
    waited_for_consumer_s: float = 0.0
    duration_s: float = 0.0

    def to_json(self) -> str:
        body = asdict(self)
        body["drift"] = self.counts.drift
        body["in_sync"] = self.counts.drift == 0
        return json.dumps(body, indent=2, default=str)


def choose_version(settings: LakesyncSettings, table: TableMapping, requested: int | None) -> tuple[int | None, str]:
    """The version to pin and why: requested, the stream's progress, or the latest (None)."""
    if requested is not None:
        return requested, "requested"
    progress = read_progress(settings.postgres, stream_target(table))
    if progress is not None and progress.completed_version is not None:
        return progress.completed_version, "stream progress"
    return None, "latest"


def reconcile(
    spark: SparkSession,
    settings: LakesyncSettings,
    table: TableMapping,
    *,
    version: int | None = None,
    wait_s: float | None = 300.0,
    sample_size: int = 20,
    repair: bool = False,
) -> ReconcileResult:
    """Compare, report and (optionally) repair one table mapping."""
    from pyspark import StorageLevel

    started = time.monotonic()
    wanted, pinned_by = choose_version(settings, table, version)
    waited = 0.0
    if wait_s is not None and pinned_by == "stream progress":
        waited = wait_for_consumer(
            settings, table, wait_s, on_wait=lambda n: log.info("waiting for the consumer", behind=n)
        )
    pinned = pin(spark, table, wanted)
    log.info("reconciling", table=table.name, version=pinned.version, pinned_by=pinned_by)
    comparison = compare(spark, settings, pinned)
    # Counting, the sample and the repairs all start from the classified keys: the full join is
    # computed once and kept by Spark (memory, spilling to disk), never brought to the driver.
    comparison.classified.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        with spark_progress(spark, f"reconcile {table.name} @ v{pinned.version}"):
            counts = count(comparison)
            sample = describe_sample(comparison, sample_size) if counts.drift else []
            repaired = publish_repairs(spark, settings, comparison) if repair and counts.drift else 0
    finally:
        comparison.classified.unpersist()
    target = f"{table.target_schema}.{table.target_table}"
    return ReconcileResult(
        table.name, target, pinned.version, pinned_by, counts, sample, repaired, waited, time.monotonic() - started
    )


def compare(spark: SparkSession, settings: LakesyncSettings, pinned: PinnedSource) -> Comparison:
    """Classify every key of both sides (lazy: nothing runs until counted)."""
    from pyspark.sql import functions as F

    table, schema = pinned.table, pinned.schema
    source = pinned.rows.where(F.col(PROBLEM).isNull()).select("*", key_json(schema, table.key_columns).alias(KEY))
    ref = TableRef(table.target_schema, table.target_table)
    existing = existing_table(settings.postgres, ref)
    target = raw = None
    if existing is not None:
        names = [f.name for f in schema.fields] + [VERSION_COLUMN]
        raw = read_table(spark, settings.postgres, ref, existing, names, table.key_columns)
        target = _keyed(align_to_schema(raw, schema), schema, table.key_columns)
    both = _join(
        source.select(KEY, row_hash_column(schema).alias("_ls_source_hash")),
        _target_hashes(target, schema),
        _tombstones(spark, settings, pinned),
    )
    return Comparison(pinned, source, target, both.select(KEY, _kind(pinned.version).alias(KIND)), raw)


def _keyed(frame: DataFrame, schema: StructType, key_columns: list[str]) -> DataFrame:
    return frame.select("*", key_json(schema, key_columns).alias(KEY))


def count(comparison: Comparison) -> Counts:
    """One small aggregate per class (plus the quarantined source rows)."""
    from pyspark.sql import functions as F

    counts = Counts()
    for row in comparison.classified.groupBy(KIND).agg(F.count(F.lit(1)).alias("n")).collect():  # <= 6 rows
        setattr(counts, row[KIND], int(row["n"]))
    counts.unsyncable = comparison.pinned.rows.where(F.col(PROBLEM).isNotNull()).count()
    return counts


def describe_sample(comparison: Comparison, size: int) -> list[dict[str, Any]]:
    """Up to `size` drifted keys, with the differing columns and both values of each."""
    from pyspark.sql import functions as F

    schema, key_columns = comparison.pinned.schema, comparison.pinned.table.key_columns
    drifted = comparison.classified.where(F.col(KIND).isin(*DRIFT_KINDS)).limit(size).collect()  # <= size rows
    if not drifted:
        return []
    keys = [row[KEY] for row in drifted]
    wanted = F.broadcast(comparison.pinned.rows.sparkSession.createDataFrame([(k,) for k in keys], f"{KEY} string"))
    # With simple key types both sides are first narrowed on their raw key columns, which Delta's
    # file skipping and the JDBC reader (a WHERE on the primary key) apply at the source.
    narrow = key_filter(schema, key_columns, keys)
    source = comparison.source if narrow is None else comparison.source.where(narrow)
    found = {"s": _values_of(source, wanted, schema, "s")}
    if comparison.target is not None:
        target = comparison.target
        if narrow is not None and comparison.target_read is not None:
            target = _keyed(align_to_schema(comparison.target_read.where(narrow), schema), schema, key_columns)
        found["t"] = _values_of(target, wanted, schema, "t")
    return [_sample_entry(row[KEY], row[KIND], found, schema) for row in drifted]


def _values_of(side: DataFrame, wanted: DataFrame, schema: StructType, prefix: str) -> dict[str, dict[str, Any]]:
    """The wanted keys' rows of one side (inner join on a broadcast of at most `size` keys)."""
    values = [_as_json(f.name, f.dataType).alias(f"{prefix}_{f.name}") for f in schema.fields]
    tokens = [token_column(column(f.name), f.dataType).alias(f"{prefix}t_{f.name}") for f in schema.fields]
    # One row per key even if the source holds a key twice: at most `size` rows reach the driver.
    rows = side.join(wanted, KEY).dropDuplicates([KEY]).select(KEY, *values, *tokens).collect()
    return {row[KEY]: row.asDict() for row in rows}


def key_filter(schema: StructType, key_columns: list[str], keys: list[str]) -> Column | None:
    """`keys` (KEY JSON texts) as a filter on the raw key columns; None for key types whose JSON
    value is not their exact value (only integers and strings are)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    simple = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.StringType)
    types = {f.name: f.dataType for f in schema.fields}
    if not all(isinstance(types[k], simple) for k in key_columns):
        return None
    matches = []
    for text in keys:
        values = json.loads(text)
        equals = [column(k) == F.lit(values[k]).cast(types[k]) for k in key_columns]  # folded: still pushed down
        matches.append(functools.reduce(operator.and_, equals))
    return functools.reduce(operator.or_, matches)


def _sample_entry(
    key: str, kind: str, found: dict[str, dict[str, dict[str, Any]]], schema: StructType
) -> dict[str, Any]:
    source, target = found["s"].get(key, {}), found.get("t", {}).get(key, {})
    entry: dict[str, Any] = {"key": json.loads(key), "kind": kind, "columns": {}}
    for f in schema.fields:
        if kind == "different" and source.get(f"st_{f.name}") == target.get(f"tt_{f.name}"):
            continue
        entry["columns"][f.name] = {
            "source": _loads(source.get(f"s_{f.name}")),
            "target": _loads(target.get(f"t_{f.name}")),
        }
    return entry


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)["v"]


def _as_json(name: str, data_type: Any) -> Column:
    """The value as envelope JSON text ({"v": ...}), so the report shows exact values."""
    from pyspark.sql import functions as F

    return F.to_json(F.struct(json_ready(column(name), data_type).alias("v")), SPARK_JSON_OPTIONS)


def _target_hashes(target: DataFrame | None, schema: StructType) -> DataFrame | None:
    if target is None:
        return None
    return target.select(
        KEY, row_hash_column(schema).alias("_ls_target_hash"), column(VERSION_COLUMN).alias("_ls_target_version")
    )


def _tombstones(spark: SparkSession, settings: LakesyncSettings, pinned: PinnedSource) -> DataFrame | None:
    """Deleted keys with their delete version, from the consumer's tombstone table (if any)."""
    from pyspark.sql import types as T

    table = pinned.table
    ref = TableRef(BOOKKEEPING_SCHEMA, tombstone_table_name(TableRef(table.target_schema, table.target_table)))
    existing = existing_table(settings.postgres, ref)
    if existing is None:
        return None
    raw = read_table(spark, settings.postgres, ref, existing, [*table.key_columns, VERSION_COLUMN], table.key_columns)
    keys = T.StructType([f for f in pinned.schema.fields if f.name in table.key_columns])
    aligned = align_to_schema(raw, keys)
    return aligned.select(
        key_json(pinned.schema, table.key_columns).alias(KEY), column(VERSION_COLUMN).alias("_ls_deleted_version")
    )


def _join(source: DataFrame, target: DataFrame | None, tombstones: DataFrame | None) -> DataFrame:
    from pyspark.sql import functions as F

    if target is None:
        target = source.sparkSession.createDataFrame([], f"{KEY} string, _ls_target_hash long, _ls_target_version long")
    joined = source.join(target, KEY, "full_outer")
    if tombstones is None:
        return joined.select("*", F.lit(None).cast("long").alias("_ls_deleted_version"))
    return joined.join(tombstones, KEY, "left")


def _kind(version: int) -> Column:
    from pyspark.sql import functions as F

    in_source = F.col("_ls_source_hash").isNotNull()
    in_target = F.col("_ls_target_version").isNotNull()
    target_newer = in_target & (F.col("_ls_target_version") > version)
    deleted_later = F.coalesce(F.col("_ls_deleted_version") > version, F.lit(False))
    return (
        F.when(target_newer, F.lit("newer_in_target"))
        .when(in_source & in_target & (F.col("_ls_source_hash") == F.col("_ls_target_hash")), F.lit("equal"))
        .when(in_source & in_target, F.lit("different"))
        .when(in_source & deleted_later, F.lit("deleted_after_pin"))
        .when(in_source, F.lit("missing_in_target"))
        .otherwise(F.lit("extra_in_target"))
    )
