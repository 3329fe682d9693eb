"""The canonical row hash: one definition, computed by Spark and reproducible in plain Python.

A row's *target-mapped* values (the columns PostgreSQL will hold, in target column order) are
each encoded as a self-delimiting text token, the tokens are concatenated, and the UTF-8 bytes
are hashed with XXH64 (seed 42), read as a signed 64-bit integer. That is exactly Spark's
`xxhash64(string)`, so Spark computes it natively and Python (`row_hash`) can check it.

Token of a value:
    NULL          ->  "~"
    otherwise     ->  <tag> <payload length in UTF-8 bytes> ":" <payload>

| tag | type                    | payload                                                        |
|-----|-------------------------|----------------------------------------------------------------|
| b   | boolean                 | "t" or "f"                                                     |
| i   | byte, short, int, long  | decimal digits ("-12")                                         |
| n   | decimal(p, s)           | plain decimal at scale s ("1.50", "0.0100"); zero has no sign  |
| f   | float, double           | Java hex float of the value as a double ("0x1.8p1", "-0x0.0p0", |
|     |                         | "NaN", "Infinity", "-Infinity"); exact, so -0.0 != 0.0          |
| s   | string, char, varchar   | the text                                                       |
| x   | binary                  | upper-case hex                                                 |
| d   | date                    | days since 1970-01-01                                          |
| t   | timestamp (instant)     | microseconds since 1970-01-01T00:00Z                           |
| l   | timestamp_ntz           | microseconds of the wall-clock time since 1970-01-01T00:00     |
| a   | array                   | element tokens, in order                                       |
| m   | map                     | key token + value token per entry, entries sorted by key token |
| r   | struct                  | field tokens, in field order                                   |

Inside arrays, maps and structs (stored as jsonb, whose numbers have no negative zero) a float
-0.0 encodes as 0.0, since PostgreSQL cannot tell them apart there.

Length prefixes make tokens prefix-free, so ("ab", "c") and ("a", "bc") differ, as do NULL and
"", 1.5 at scale 1 and 1.50 at scale 2, and a timestamp in two zones that are the same instant
do not. Both sides of a comparison must first be cast to the same target-mapped schema (the
PostgreSQL side is read back and aligned by `connectors/postgres_read.py`).
"""

from __future__ import annotations

import datetime as dt
import math
import struct
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import xxhash
from pyspark.sql import types as T

if TYPE_CHECKING:
    from pyspark.sql import Column

SEED = 42
NULL_TOKEN = "~"
_EPOCH_DATE = dt.date(1970, 1, 1)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_NAIVE = dt.datetime(1970, 1, 1)
_INTEGRAL = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
_TEXT = (T.StringType, T.CharType, T.VarcharType)
_FLOAT32 = struct.Struct("<f")


# --- Python reference -----------------------------------------------------------------------


def row_hash(values: Sequence[Any], schema: T.StructType) -> int:
    """The canonical hash of one row given as values in `schema` order."""
    encoded = "".join(token(v, f.dataType) for v, f in zip(values, schema.fields, strict=True))
    return hash_text(encoded)


def hash_text(encoded: str) -> int:
    """XXH64 (seed 42) of the UTF-8 text as a signed 64-bit integer, like Spark's xxhash64."""
    unsigned = xxhash.xxh64_intdigest(encoded.encode(), seed=SEED)
    return unsigned - (1 << 64) if unsigned >= 1 << 63 else unsigned


def token(value: Any, data_type: T.DataType, *, nested: bool = False) -> str:
    """The canonical token of one value (see the module docstring for the grammar)."""
    if value is None:
        return NULL_TOKEN
    if nested and isinstance(data_type, (T.FloatType, T.DoubleType)):
        value = float(value) + 0.0  # jsonb has no negative zero: -0.0 + 0.0 == +0.0
    tag, payload = _tag_and_payload(value, data_type)
    return f"{tag}{len(payload.encode())}:{payload}"


def java_hex_float(value: float) -> str:
    """Java's Double.toHexString, which Spark's format_string('%a') prints."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    mantissa, exponent = abs(value).hex()[2:].split("p")
    whole, fraction = mantissa.split(".")
    fraction = fraction.rstrip("0") or "0"
    return f"{sign}0x{whole}.{fraction}p{int(exponent)}"


def _tag_and_payload(value: Any, data_type: T.DataType) -> tuple[str, str]:
    if isinstance(data_type, T.BooleanType):
        return "b", "t" if value else "f"
    if isinstance(data_type, _INTEGRAL):
        return "i", str(int(value))
    if isinstance(data_type, T.DecimalType):
        return "n", _plain_decimal(Decimal(value), data_type.scale)
    if isinstance(data_type, T.FloatType):
        # A float column holds float32 values: round as Spark and PostgreSQL's real do.
        return "f", java_hex_float(_FLOAT32.unpack(_FLOAT32.pack(float(value)))[0])
    if isinstance(data_type, T.DoubleType):
        return "f", java_hex_float(float(value))
    if isinstance(data_type, _TEXT):
        return "s", str(value)
    if isinstance(data_type, T.BinaryType):
        return "x", bytes(value).hex().upper()
    if isinstance(data_type, T.DateType):
        return "d", str((value - _EPOCH_DATE).days)
    if isinstance(data_type, T.TimestampType):
        instant = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return "t", str((instant - _EPOCH) // dt.timedelta(microseconds=1))
    if isinstance(data_type, T.TimestampNTZType):
        return "l", str((value.replace(tzinfo=None) - _EPOCH_NAIVE) // dt.timedelta(microseconds=1))
    return _nested_tag_and_payload(value, data_type)


def _nested_tag_and_payload(value: Any, data_type: T.DataType) -> tuple[str, str]:
    if isinstance(data_type, T.ArrayType):
        return "a", "".join(token(v, data_type.elementType, nested=True) for v in value)
    if isinstance(data_type, T.MapType):
        entries = sorted(
            token(k, data_type.keyType, nested=True) + token(v, data_type.valueType, nested=True)
            for k, v in value.items()
        )
        return "m", "".join(entries)
    if isinstance(data_type, T.StructType):
        fields = value if isinstance(value, Mapping) else value.asDict() if hasattr(value, "asDict") else None
        values = list(value) if fields is None else [fields.get(f.name) for f in data_type.fields]
        return "r", "".join(token(v, f.dataType, nested=True) for v, f in zip(values, data_type.fields, strict=True))
    raise TypeError(f"no canonical encoding for {data_type.simpleString()}")


def _plain_decimal(value: Decimal, scale: int) -> str:
    quantized = value.quantize(Decimal(1).scaleb(-scale))
    if quantized.is_zero():
        quantized = abs(quantized)
    return format(quantized, "f")


# --- Spark implementation -------------------------------------------------------------------


def row_hash_column(schema: T.StructType, columns: Sequence[Column] | None = None) -> Column:
    """Spark expression computing `row_hash` for the columns of `schema` (by name by default)."""
    from pyspark.sql import functions as F

    from connectors.spark import column

    cols = columns if columns is not None else [column(f.name) for f in schema.fields]
    tokens = [token_column(c, f.dataType) for c, f in zip(cols, schema.fields, strict=True)]
    return F.xxhash64(F.concat(*tokens) if tokens else F.lit(""))


def token_column(column: Column, data_type: T.DataType, *, nested: bool = False) -> Column:
    """Spark expression for `token` of one column."""
    from pyspark.sql import functions as F

    if nested and isinstance(data_type, (T.FloatType, T.DoubleType)):
        column = F.when(column == 0.0, F.lit(0.0).cast(data_type)).otherwise(column)  # -0.0 == 0.0
    tag, payload = _spark_tag_and_payload(column, data_type)
    framed = F.concat(F.lit(tag), F.octet_length(payload).cast("string"), F.lit(":"), payload)
    return F.when(column.isNull(), F.lit(NULL_TOKEN)).otherwise(framed)


def _spark_tag_and_payload(c: Column, data_type: T.DataType) -> tuple[str, Column]:
    from pyspark.sql import functions as F

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
    from pyspark.sql import functions as F

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
