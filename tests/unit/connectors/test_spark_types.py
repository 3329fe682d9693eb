"""Spark types map to PostgreSQL types that hold every value exactly."""

from __future__ import annotations

import pytest
from pyspark.sql import types as T

from changes.type_mapping import TargetColumn
from connectors.errors import UnsupportedTypeError
from connectors.spark_types import pg_type, target_columns


@pytest.mark.parametrize(
    ("spark_type", "expected"),
    [
        (T.BooleanType(), "boolean"),
        (T.ByteType(), "smallint"),
        (T.ShortType(), "smallint"),
        (T.IntegerType(), "integer"),
        (T.LongType(), "bigint"),
        (T.FloatType(), "real"),
        (T.DoubleType(), "double precision"),
        (T.DecimalType(38, 18), "numeric(38,18)"),
        (T.DecimalType(12, 0), "numeric(12,0)"),
        (T.StringType(), "text"),
        (T.BinaryType(), "bytea"),
        (T.DateType(), "date"),
        (T.TimestampType(), "timestamptz"),
        (T.TimestampNTZType(), "timestamp"),
        (T.ArrayType(T.IntegerType()), "jsonb"),
        (T.MapType(T.StringType(), T.DoubleType()), "jsonb"),
        (T.StructType([T.StructField("a", T.LongType())]), "jsonb"),
    ],
)
def test_each_type_has_an_exact_target(spark_type: T.DataType, expected: str) -> None:
    assert pg_type(spark_type) == expected


def test_unsupported_type_names_the_column() -> None:
    with pytest.raises(UnsupportedTypeError, match=r"'span'.*interval"):
        pg_type(T.DayTimeIntervalType(), "span")


def test_target_columns_keep_schema_order() -> None:
    schema = T.StructType([T.StructField("id", T.LongType()), T.StructField("price", T.DecimalType(10, 2))])
    assert target_columns(schema) == [TargetColumn("id", "bigint"), TargetColumn("price", "numeric(10,2)")]
