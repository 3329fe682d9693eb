"""The canonical row hash: one definition, computed by Spark and reproducible in plain Python.

A row's *target-mapped* values (the columns PostgreSQL will hold, in target column order) are
each encoded as a self-delimiting text token, the tokens are concatenated, and the UTF-8 bytes
are hashed with XXH64 (seed 42), read as a signed 64-bit integer. That is exactly Spark's
`xxhash64(string)`, so Spark computes it natively (`streaming/publisher/row_hash_spark.py`) and
this module, the plain-Python reference (`row_hash`), can check it. No pyspark here: the
reference reads Spark's data types by their shape (`DataType`), so it runs without Spark.

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
from typing import Any, Protocol, cast

import xxhash

SEED = 42
NULL_TOKEN = "~"
_EPOCH_DATE = dt.date(1970, 1, 1)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_NAIVE = dt.datetime(1970, 1, 1)
# Spark's type names (`DataType.typeName()`) grouped by the token they encode as.
_INTEGRAL = frozenset({"byte", "short", "integer", "long"})
_TEXT = frozenset({"string", "char", "varchar"})
_FLOATS = frozenset({"float", "double"})
_FLOAT32 = struct.Struct("<f")


# --- Spark data types, read by their shape ----------------------------------------------------
# `pyspark.sql.types` objects fit these protocols; nothing here imports pyspark.


class DataType(Protocol):
    """A Spark data type as the reference reads it: its name ("decimal", "array", ...)."""

    def typeName(self) -> str: ...  # noqa: N802 - Spark's method name

    def simpleString(self) -> str: ...  # noqa: N802 - Spark's method name


class Field(Protocol):
    """A field of a Spark struct type: its name and data type."""

    @property
    def name(self) -> str: ...

    @property
    def dataType(self) -> DataType: ...  # noqa: N802 - Spark's attribute name


class Schema(DataType, Protocol):
    """A Spark struct type, such as a row's schema: its fields in order."""

    @property
    def fields(self) -> Sequence[Field]: ...


class _Decimal(DataType, Protocol):
    @property
    def scale(self) -> int: ...


class _Array(DataType, Protocol):
    @property
    def elementType(self) -> DataType: ...  # noqa: N802 - Spark's attribute name


class _Map(DataType, Protocol):
    @property
    def keyType(self) -> DataType: ...  # noqa: N802 - Spark's attribute name

    @property
    def valueType(self) -> DataType: ...  # noqa: N802 - Spark's attribute name


# --- Python reference -----------------------------------------------------------------------


def row_hash(values: Sequence[Any], schema: Schema) -> int:
    """The canonical hash of one row given as values in `schema` order."""
    encoded = "".join(token(v, f.dataType) for v, f in zip(values, schema.fields, strict=True))
    return hash_text(encoded)


def hash_text(encoded: str) -> int:
    """XXH64 (seed 42) of the UTF-8 text as a signed 64-bit integer, like Spark's xxhash64."""
    unsigned = xxhash.xxh64_intdigest(encoded.encode(), seed=SEED)
    return unsigned - (1 << 64) if unsigned >= 1 << 63 else unsigned


def token(value: Any, data_type: DataType, *, nested: bool = False) -> str:
    """The canonical token of one value (see the module docstring for the grammar)."""
    if value is None:
        return NULL_TOKEN
    if nested and data_type.typeName() in _FLOATS:
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


def _tag_and_payload(value: Any, data_type: DataType) -> tuple[str, str]:
    name = data_type.typeName()
    if name == "boolean":
        return "b", "t" if value else "f"
    if name in _INTEGRAL:
        return "i", str(int(value))
    if name == "decimal":
        return "n", _plain_decimal(Decimal(value), cast(_Decimal, data_type).scale)
    if name == "float":
        # A float column holds float32 values: round as Spark and PostgreSQL's real do.
        return "f", java_hex_float(_FLOAT32.unpack(_FLOAT32.pack(float(value)))[0])
    if name == "double":
        return "f", java_hex_float(float(value))
    if name in _TEXT:
        return "s", str(value)
    if name == "binary":
        return "x", bytes(value).hex().upper()
    if name == "date":
        return "d", str((value - _EPOCH_DATE).days)
    if name == "timestamp":
        instant = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return "t", str((instant - _EPOCH) // dt.timedelta(microseconds=1))
    if name == "timestamp_ntz":
        return "l", str((value.replace(tzinfo=None) - _EPOCH_NAIVE) // dt.timedelta(microseconds=1))
    return _nested_tag_and_payload(value, data_type)


def _nested_tag_and_payload(value: Any, data_type: DataType) -> tuple[str, str]:
    name = data_type.typeName()
    if name == "array":
        element = cast(_Array, data_type).elementType
        return "a", "".join(token(v, element, nested=True) for v in value)
    if name == "map":
        map_type = cast(_Map, data_type)
        entries = sorted(
            token(k, map_type.keyType, nested=True) + token(v, map_type.valueType, nested=True)
            for k, v in value.items()
        )
        return "m", "".join(entries)
    if name == "struct":
        struct_fields = cast(Schema, data_type).fields
        fields = value if isinstance(value, Mapping) else value.asDict() if hasattr(value, "asDict") else None
        values = list(value) if fields is None else [fields.get(f.name) for f in struct_fields]
        return "r", "".join(token(v, f.dataType, nested=True) for v, f in zip(values, struct_fields, strict=True))
    raise TypeError(f"no canonical encoding for {data_type.simpleString()}")


def _plain_decimal(value: Decimal, scale: int) -> str:
    quantized = value.quantize(Decimal(1).scaleb(-scale))
    if quantized.is_zero():
        quantized = abs(quantized)
    return format(quantized, "f")
