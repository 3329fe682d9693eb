"""How a target-mapped Spark column becomes a PostgreSQL column, exactly (the Spark half of
`changes/type_mapping.py`, whose table it implements).

Anything outside that table (interval, variant, void) raises UnsupportedTypeError naming the column.
"""

from __future__ import annotations

from pyspark.sql import types as T

from changes.type_mapping import TargetColumn
from connectors.errors import UnsupportedTypeError

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
    """Whether values of `data_type` are stored as jsonb (arrays, maps, structs)."""
    return isinstance(data_type, NESTED_TYPES)
