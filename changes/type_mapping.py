"""How a target-mapped Spark column becomes a PostgreSQL column, exactly.

| Spark type            | PostgreSQL type     | note                                          |
|-----------------------|---------------------|-----------------------------------------------|
| boolean               | boolean             |                                               |
| byte, short           | smallint            |                                               |
| int                   | integer             |                                               |
| long                  | bigint              |                                               |
| float                 | real                | NaN and ±Infinity kept                        |
| double                | double precision    | NaN and ±Infinity kept                        |
| decimal(p,s)          | numeric(p,s)        | exact, never a float                          |
| string, char, varchar | text                | NUL characters cannot be stored: quarantined  |
| binary                | bytea               |                                               |
| date                  | date                |                                               |
| timestamp             | timestamptz         | an instant; stored with time zone             |
| timestamp_ntz         | timestamp           | a wall-clock time without zone                |
| array, map, struct    | jsonb               | nested values as JSON                         |

Anything else (interval, variant, void) raises UnsupportedTypeError naming the column.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import types as T

from lakesync.errors import LakesyncError


class UnsupportedTypeError(LakesyncError):
    """A source column has a type lakesync cannot store in PostgreSQL without loss."""


@dataclass(frozen=True)
class TargetColumn:
    """One column of a target table: its name and PostgreSQL type, as carried in envelopes."""

    name: str
    pg_type: str


_SCALARS: dict[type[T.DataType], str] = {
    T.BooleanType: "boolean",
    T.ByteType: "smallint",
    T.ShortType: "smallint",
    T.IntegerType: "integer",
    T.LongType: "bigint",
    T.FloatType: "real",
    T.DoubleType: "double precision",
    T.StringType: "text",
    T.CharType: "text",
    T.VarcharType: "text",
    T.BinaryType: "bytea",
    T.DateType: "date",
    T.TimestampType: "timestamptz",
    T.TimestampNTZType: "timestamp",
}

NESTED_TYPES = (T.ArrayType, T.MapType, T.StructType)


def pg_type(data_type: T.DataType, column: str = "?") -> str:
    """The PostgreSQL type that holds every value of `data_type` exactly."""
    if isinstance(data_type, T.DecimalType):
        return f"numeric({data_type.precision},{data_type.scale})"
    if isinstance(data_type, NESTED_TYPES):
        return "jsonb"
    for spark_type, name in _SCALARS.items():
        if isinstance(data_type, spark_type):
            return name
    raise UnsupportedTypeError(
        f"column {column!r} has type {data_type.simpleString()}, which lakesync cannot store "
        "exactly in PostgreSQL; cast it in the table mapping (columns = [...]) or drop it"
    )


def target_columns(schema: T.StructType) -> list[TargetColumn]:
    """The target table's columns for a target-mapped Spark schema, in schema order."""
    return [TargetColumn(field.name, pg_type(field.dataType, field.name)) for field in schema.fields]


def is_nested(data_type: T.DataType) -> bool:
    return isinstance(data_type, NESTED_TYPES)
