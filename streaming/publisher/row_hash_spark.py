"""The canonical row hash as a Spark expression: `changes/row_hash.py`'s grammar, computed natively.

Spark builds each value's token with column functions and hashes the concatenation with its
`xxhash64` (seed 42); `changes.row_hash.row_hash` is the plain-Python reference it must equal
(tests/integration/streaming/test_row_hash_parity.py checks every type).
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

from changes.row_hash import NULL_TOKEN
from connectors.spark import column as named_column

_INTEGRAL = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
_TEXT = (T.StringType, T.CharType, T.VarcharType)


def row_hash_column(schema: T.StructType, columns: Sequence[Column] | None = None) -> Column:
    """Spark expression computing `row_hash` for the columns of `schema` (by name by default)."""
    cols = columns if columns is not None else [named_column(f.name) for f in schema.fields]
    tokens = [token_column(c, f.dataType) for c, f in zip(cols, schema.fields, strict=True)]
    return F.xxhash64(F.concat(*tokens) if tokens else F.lit(""))


def token_column(column: Column, data_type: T.DataType, *, nested: bool = False) -> Column:
    """Spark expression for `token` of one column."""
    if nested and isinstance(data_type, (T.FloatType, T.DoubleType)):
        column = F.when(column == 0.0, F.lit(0.0).cast(data_type)).otherwise(column)  # -0.0 == 0.0
    tag, payload = _spark_tag_and_payload(column, data_type)
    framed = F.concat(F.lit(tag), F.octet_length(payload).cast("string"), F.lit(":"), payload)
    return F.when(column.isNull(), F.lit(NULL_TOKEN)).otherwise(framed)


def _spark_tag_and_payload(c: Column, data_type: T.DataType) -> tuple[str, Column]:
    if isinstance(data_type, T.BooleanType):
        return "b", F.when(c, F.lit("t")).otherwise(F.lit("f"))
    if isinstance(data_type, (*_INTEGRAL, T.DecimalType)):
        return ("n" if isinstance(data_type, T.DecimalType) else "i"), c.cast("string")
    if isinstance(data_type, (T.FloatType, T.DoubleType)):
        return "f", F.format_string("%a", c.cast("double"))
    if isinstance(data_type, _TEXT):
        return "s", c.cast("string")
    if isinstance(data_type, T.BinaryType):
        return "x", F.hex(c)
    if isinstance(data_type, T.DateType):
        return "d", F.unix_date(c).cast("string")
    if isinstance(data_type, T.TimestampType):
        return "t", F.unix_micros(c).cast("string")
    if isinstance(data_type, T.TimestampNTZType):
        # The session time zone is UTC (connectors/spark.py), so the cast keeps the wall clock.
        return "l", F.unix_micros(c.cast("timestamp")).cast("string")
    return _spark_nested(c, data_type)


def _spark_nested(c: Column, data_type: T.DataType) -> tuple[str, Column]:
    if isinstance(data_type, T.ArrayType):
        element = data_type.elementType
        return "a", F.array_join(F.transform(c, lambda x: token_column(x, element, nested=True)), "")
    if isinstance(data_type, T.MapType):
        key_type, value_type = data_type.keyType, data_type.valueType
        entries = F.transform(
            F.map_entries(c),
            lambda e: F.concat(
                token_column(e["key"], key_type, nested=True), token_column(e["value"], value_type, nested=True)
            ),
        )
        return "m", F.array_join(F.array_sort(entries), "")
    if isinstance(data_type, T.StructType):
        fields = [token_column(c[f.name], f.dataType, nested=True) for f in data_type.fields]
        return "r", F.concat(*fields) if fields else F.lit("")
    raise TypeError(f"no canonical encoding for {data_type.simpleString()}")
