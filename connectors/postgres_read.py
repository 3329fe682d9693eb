"""Partitioned, parallel reads of a PostgreSQL table into Spark, aligned to a target-mapped schema.

Used to seed the streaming state snapshot and by `lakesync reconcile`. The read is split over at
most `postgres.max_spark_connections` connections: by value ranges of the first key column when
it is an integer, otherwise by `hashtext(key) % n` predicates. `fetchsize` is always set — pgJDBC
otherwise loads the whole result into memory.

PostgreSQL values come back as JDBC types; `align_to_schema` casts them to the target-mapped
Spark types (jsonb text is parsed back into the nested type) so the canonical row hash of a row
read here equals the hash of the same row computed from Delta.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql
from pyspark.sql import types as T

from lakesync.changes.type_mapping import is_nested
from lakesync.config import PostgresSettings
from lakesync.changes.envelope import SPARK_JSON_OPTIONS
from lakesync.connectors.spark import column

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_INTEGER_TYPES = frozenset({"smallint", "integer", "bigint"})


@dataclass(frozen=True)
class TargetTable:
    """A PostgreSQL table as it exists now: its columns and their types (in table order)."""

    schema: str
    name: str
    column_types: dict[str, str]

    @property
    def qualified(self) -> str:
        return sql.Identifier(self.schema, self.name).as_string(None)


def describe_table(pg: PostgresSettings, schema: str, name: str) -> TargetTable | None:
    """The table's columns and types, or None when it does not exist."""
    query = """
        SELECT a.attname, format_type(a.atttypid, a.atttypmod)
        FROM pg_attribute a
        WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum
    """
    with psycopg.connect(**pg.connection_kwargs()) as conn:
        rows = conn.execute(query, (sql.Identifier(schema, name).as_string(conn),)).fetchall()
    if not rows:
        return None
    return TargetTable(schema, name, {column: pg_type for column, pg_type in rows})


def read_table(
    spark: SparkSession,
    pg: PostgresSettings,
    table: TargetTable,
    columns: Sequence[str],
    key_columns: Sequence[str],
) -> DataFrame:
    """`columns` of `table` (those that exist), read in parallel over bounded connections."""
    existing = [c for c in columns if c in table.column_types]
    select = sql.SQL("(SELECT {} FROM {}) AS lakesync_read").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in existing), sql.Identifier(table.schema, table.name)
    )
    reader = (
        spark.read.format("jdbc")
        .option("url", pg.jdbc_url())
        .option("dbtable", select.as_string(None))
        .option("preferTimestampNTZ", "true")
        .options(**pg.jdbc_properties())
    )
    partitions = pg.max_spark_connections
    first_key = key_columns[0]
    if table.column_types.get(first_key) in _INTEGER_TYPES:
        low, high = _key_bounds(pg, table, first_key)
        if low is not None and high is not None and partitions > 1:
            return (
                reader.option("partitionColumn", first_key)
                .option("lowerBound", str(low))
                .option("upperBound", str(high + 1))
                .option("numPartitions", str(partitions))
                .load()
            )
        return reader.load()
    predicates = _hash_predicates(key_columns, partitions)
    return spark.read.jdbc(pg.jdbc_url(), select.as_string(None), predicates=predicates,
                           properties={**pg.jdbc_properties(), "preferTimestampNTZ": "true"})


def align_to_schema(frame: DataFrame, schema: T.StructType) -> DataFrame:
    """Cast every column to its target-mapped type; a column the table lacks becomes null."""
    from pyspark.sql import functions as F

    present = set(frame.columns)
    aligned = []
    for field in schema.fields:
        if field.name not in present:
            aligned.append(F.lit(None).cast(field.dataType).alias(field.name))
        elif is_nested(field.dataType):
            aligned.append(F.from_json(column(field.name), field.dataType, SPARK_JSON_OPTIONS).alias(field.name))
        else:
            aligned.append(column(field.name).cast(field.dataType).alias(field.name))
    extra = [column(c) for c in frame.columns if c not in {f.name for f in schema.fields}]
    return frame.select(*aligned, *extra)


def _key_bounds(pg: PostgresSettings, table: TargetTable, column: str) -> tuple[int | None, int | None]:
    query = sql.SQL("SELECT min({c}), max({c}) FROM {t}").format(
        c=sql.Identifier(column), t=sql.Identifier(table.schema, table.name)
    )
    with psycopg.connect(**pg.connection_kwargs()) as conn:
        row = conn.execute(query).fetchone()
    return (row[0], row[1]) if row else (None, None)


def _hash_predicates(key_columns: Sequence[str], partitions: int) -> list[str]:
    """`n` disjoint predicates covering every row (hashtext is stable within one server)."""
    key_text = sql.SQL(" || '|' || ").join(
        sql.SQL("coalesce({}::text, '')").format(sql.Identifier(k)) for k in key_columns
    )
    return [
        sql.SQL("mod(hashtext({}) & 2147483647, {}) = {}")
        .format(key_text, sql.Literal(partitions), sql.Literal(i))
        .as_string(None)
        for i in range(partitions)
    ]
