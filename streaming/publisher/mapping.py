"""Declarative column mapping, compiled into one projection (seed 000, phase 1).

A table mapping's `columns` (rename, SQL expression, cast) and `lookups` (small reference tables
joined by broadcast, e.g. IBGE state code -> state name) become: the change feed, left-joined
with each broadcast lookup, then ONE `select` producing every target column — never a chain of
`withColumn`s. The change feed's `_change_type`, `_commit_version` and `_commit_timestamp` ride
along, and `_ls_problem` names why a row cannot be synced (or is null when it can):

    null_key:<col>        a key column is null
    cast_failed:<col>     the configured cast failed for a non-null value
    nul_character:<col>   text holds U+0000, which PostgreSQL text and jsonb cannot store

Value problems only matter for images: a delete needs nothing but its key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from connectors.spark import column
from connectors.spark_types import is_nested
from lakesync.config import ColumnMapping, LookupTable, TableMapping

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import DataType, StructType

CHANGE_TYPE = "_change_type"
COMMIT_VERSION = "_commit_version"
COMMIT_TIMESTAMP = "_commit_timestamp"
PROBLEM = "_ls_problem"
FEED_METADATA = (CHANGE_TYPE, COMMIT_VERSION, COMMIT_TIMESTAMP)
SOURCE_ALIAS = "src"


@dataclass(frozen=True)
class CompiledMapping:
    """A mapping ready to apply to change-feed batches of one table."""

    table: TableMapping
    lookups: dict[str, DataFrame]

    def apply(self, feed: DataFrame) -> DataFrame:
        """Target columns + feed metadata + `_ls_problem`, in one projection after the joins."""
        from pyspark.sql import functions as F

        joined = feed.alias(SOURCE_ALIAS)
        for lookup in self.table.lookups:
            joined = joined.join(
                F.broadcast(self.lookups[lookup.name].alias(lookup.name)),
                _join_condition(lookup),
                "left",
            )
        specs = self.table.columns or _pass_through(feed.schema)
        projected = joined.select(
            *[_target_expr(spec).alias(spec.name) for spec in specs],
            *[F.col(f"{SOURCE_ALIAS}.{name}") for name in FEED_METADATA],
            *[_raw_expr(spec).alias(_raw_name(spec)) for spec in specs if spec.cast],
        )
        return _with_problems(projected, self.table, specs)

    @staticmethod
    def target_schema(mapped: DataFrame) -> StructType:
        """The target-mapped schema of an applied frame: its columns minus feed metadata."""
        from pyspark.sql import types as T

        return T.StructType([f for f in mapped.schema.fields if _is_target_column(f.name)])


def compile_mapping(spark: SparkSession, table: TableMapping) -> CompiledMapping:
    """Load (and cache) the lookups once; they are small and static for the job's lifetime."""
    lookups = {lookup.name: _load_lookup(spark, lookup).cache() for lookup in table.lookups}
    return CompiledMapping(table, lookups)


def _load_lookup(spark: SparkSession, lookup: LookupTable) -> DataFrame:
    reader = spark.read.format(lookup.format)
    if lookup.format == "csv":
        reader = reader.option("header", "true").option("inferSchema", "true")
    return reader.load(lookup.path)


def _join_condition(lookup: LookupTable) -> Column:
    from pyspark.sql import functions as F

    conditions = [
        F.col(f"{SOURCE_ALIAS}.{_quote(src)}") == F.col(f"{lookup.name}.{_quote(dst)}")
        for src, dst in lookup.on.items()
    ]
    condition = conditions[0]
    for extra in conditions[1:]:
        condition = condition & extra
    return condition


def _pass_through(schema: StructType) -> list[ColumnMapping]:
    return [ColumnMapping(name=f.name) for f in schema.fields if f.name not in FEED_METADATA]


def _raw_expr(spec: ColumnMapping) -> Column:
    """The value before the cast: a source column, an expression, or the same-named column."""
    from pyspark.sql import functions as F

    if spec.expr is not None:
        return F.expr(spec.expr)
    return F.col(f"{SOURCE_ALIAS}.{_quote(spec.source or spec.name)}")


def _target_expr(spec: ColumnMapping) -> Column:
    raw = _raw_expr(spec)
    # try_cast: a bad value becomes a quarantined row with a reason, not a failed job.
    return raw.try_cast(spec.cast) if spec.cast else raw


def _raw_name(spec: ColumnMapping) -> str:
    return f"_ls_raw_{spec.name}"


def _with_problems(projected: DataFrame, table: TableMapping, specs: list[ColumnMapping]) -> DataFrame:
    from pyspark.sql import functions as F

    schema = {f.name: f.dataType for f in projected.schema.fields}
    key_checks = [F.when(column(k).isNull(), F.lit(f"null_key:{k}")) for k in table.key_columns]
    value_checks = [
        F.when(column(_raw_name(s)).isNotNull() & column(s.name).isNull(), F.lit(f"cast_failed:{s.name}"))
        for s in specs
        if s.cast
    ] + [
        F.when(_holds_nul(column(s.name), schema[s.name]), F.lit(f"nul_character:{s.name}"))
        for s in specs
        if _may_hold_text(schema[s.name])
    ]
    is_image = F.col(CHANGE_TYPE) != F.lit("delete")
    problem = F.coalesce(
        *key_checks,
        *[F.when(is_image, check) for check in value_checks],
        F.lit(None).cast("string"),
    )
    return projected.select(*[column(s.name) for s in specs], *FEED_METADATA, problem.alias(PROBLEM))


def _may_hold_text(data_type: DataType) -> bool:
    from pyspark.sql import types as T

    return isinstance(data_type, (T.StringType, T.CharType, T.VarcharType)) or is_nested(data_type)


def _holds_nul(column: Column, data_type: DataType) -> Column:
    from pyspark.sql import functions as F

    text = F.to_json(column) if is_nested(data_type) else column
    marker = "\\u0000" if is_nested(data_type) else "\u0000"
    return F.coalesce(F.instr(text, marker) > 0, F.lit(False))


def _is_target_column(name: str) -> bool:
    return name not in FEED_METADATA and name != PROBLEM


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"
