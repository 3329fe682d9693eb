"""The envelope of changes/envelope.py, built natively in Spark (one `to_json` per message).

Spark's JSON writer already prints most values the way the envelope specifies (numbers, NaN and
±Infinity as strings, base64 binary, dates); the rest is pre-converted here: decimals to their
plain string (a JSON number could be read back as a float), nested values to a JSON string
(stored as jsonb), timestamps with six fraction digits and a Z. tests/integration pins Spark's
output to the Python decoder, type by type.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pyspark.sql import types as T

from changes.envelope import ENVELOPE_VERSION, SPARK_JSON_OPTIONS, columns_text
from connectors.spark import column
from connectors.spark_types import is_nested, target_columns

if TYPE_CHECKING:
    from pyspark.sql import Column


def json_ready(column: Column, data_type: T.DataType) -> Column:
    """The column as the envelope's JSON writer must see it."""
    if isinstance(data_type, T.DecimalType):
        return column.cast("string")
    if is_nested(data_type):
        from pyspark.sql import functions as F

        return F.to_json(column, SPARK_JSON_OPTIONS)
    return column


def record_struct(schema: T.StructType, names: Sequence[str] | None = None) -> Column:
    """A struct of JSON-ready columns (all of `schema`, or just `names`, in that order)."""
    from pyspark.sql import functions as F

    types = {f.name: f.dataType for f in schema.fields}
    wanted = list(names) if names is not None else list(types)
    return F.struct(*[json_ready(column(n), types[n]).alias(n) for n in wanted])


def key_json(schema: T.StructType, key_columns: Sequence[str]) -> Column:
    """The canonical primary-key encoding: the Kafka message key and the state snapshot's key."""
    from pyspark.sql import functions as F

    return F.to_json(record_struct(schema, key_columns), SPARK_JSON_OPTIONS)


def envelope_json(
    *,
    table: str,
    source: str,
    schema: T.StructType,
    key_columns: Sequence[str],
    op: Column,
    version: Column,
    commit_ts: Column,
    row_hash: Column,
    batch_id: int,
) -> Column:
    """The full envelope value; `after` is null when `op` is 'delete'."""
    from pyspark.sql import functions as F

    columns = F.lit(columns_text(target_columns(schema)))
    envelope = F.struct(
        F.lit(ENVELOPE_VERSION).alias("v"),
        op.alias("op"),
        F.lit(table).alias("table"),
        F.lit(source).alias("source"),
        version.cast("long").alias("version"),
        commit_ts.alias("commit_ts"),
        F.lit(batch_id).cast("long").alias("batch_id"),
        F.when(op == F.lit("upsert"), row_hash).alias("hash"),
        record_struct(schema, key_columns).alias("key"),
        F.when(op == F.lit("upsert"), record_struct(schema)).alias("after"),
        columns.alias("columns"),
    )
    return F.to_json(envelope, SPARK_JSON_OPTIONS)
