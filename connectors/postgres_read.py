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
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql
from pyspark.sql import types as T

from changes.envelope import SPARK_JSON_OPTIONS
from connectors.postgres_schema import ExistingTable, TableRef, describe_table
from connectors.spark import column
from connectors.spark_types import is_nested
from lakesync.config import PostgresSettings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_INTEGER_TYPES = frozenset({"smallint", "integer", "bigint"})


def existing_table(pg: PostgresSettings, ref: TableRef) -> ExistingTable | None:
    """The table's columns and primary key now, or None when it does not exist."""
    with psycopg.connect(**pg.connection_kwargs()) as conn:
        return describe_table(conn, ref)


def read_table(
    spark: SparkSession,
    pg: PostgresSettings,
    ref: TableRef,
    table: ExistingTable,
    columns: Sequence[str],
    key_columns: Sequence[str],
) -> DataFrame:
    """`columns` of the table (those that exist), read in parallel over bounded connections."""
    present = [c for c in columns if c in table.columns]
    select = sql.SQL("(SELECT {} FROM {}) AS lakesync_read").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in present), ref.identifier
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
    if table.columns.get(first_key) in _INTEGER_TYPES:
        low, high = _key_bounds(pg, ref, first_key)
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
    return spark.read.jdbc(
        pg.jdbc_url(),
        select.as_string(None),
        predicates=predicates,
        properties={**pg.jdbc_properties(), "preferTimestampNTZ": "true"},
    )


def align_to_schema(frame: DataFrame, schema: T.StructType) -> DataFrame:
    """Cast every column to its target-mapped type; a column the table lacks becomes null."""
    from pyspark.sql import functions as F

    present = set(frame.columns)
    aligned = []
    for field in schema.fields:
        if field.name not in present:
            aligned.append(F.lit(None).cast(field.dataType).alias(field.name))
        elif is_nested(field.dataType):
            # from_json reads maps too; pyspark's annotation of `schema` names only arrays and structs.
            parsed = F.from_json(column(field.name), field.dataType, SPARK_JSON_OPTIONS)  # type: ignore[arg-type]  # see above
            aligned.append(parsed.alias(field.name))
        else:
            aligned.append(column(field.name).cast(field.dataType).alias(field.name))
    extra = [column(c) for c in frame.columns if c not in {f.name for f in schema.fields}]
    return frame.select(*aligned, *extra)


def _key_bounds(pg: PostgresSettings, ref: TableRef, column: str) -> tuple[int | None, int | None]:
    query = sql.SQL("SELECT min({c}), max({c}) FROM {t}").format(c=sql.Identifier(column), t=ref.identifier)
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
