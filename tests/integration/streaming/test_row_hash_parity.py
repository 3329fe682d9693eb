"""Spark's native row hash equals the Python reference for every supported type."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any

import pytest
from pyspark.sql import types as T

from changes.row_hash import row_hash
from streaming.publisher.row_hash_spark import row_hash_column

pytestmark = pytest.mark.integration

UTC = dt.UTC
SCHEMA = T.StructType(
    [
        T.StructField("id", T.LongType()),
        T.StructField("flag", T.BooleanType()),
        T.StructField("small", T.ShortType()),
        T.StructField("price", T.DecimalType(18, 4)),
        T.StructField("ratio", T.DoubleType()),
        T.StructField("single", T.FloatType()),
        T.StructField("name", T.StringType()),
        T.StructField("photo", T.BinaryType()),
        T.StructField("born", T.DateType()),
        T.StructField("seen", T.TimestampType()),
        T.StructField("local", T.TimestampNTZType()),
        T.StructField("tags", T.ArrayType(T.StringType())),
        T.StructField("scores", T.MapType(T.StringType(), T.DoubleType())),
        T.StructField(
            "address",
            T.StructType([T.StructField("city", T.StringType()), T.StructField("zip", T.IntegerType())]),
        ),
    ]
)
ROWS: list[tuple[Any, ...]] = [
    (
        1,
        True,
        7,
        Decimal("12.5000"),
        0.1,
        1.5,
        "ação 😀",
        b"\x00\xff",
        dt.date(1969, 12, 31),
        dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        dt.datetime(2026, 1, 2, 3, 4, 5, 6),
        ["a", None, ""],
        {"z": 1.0, "a": -0.0},
        ("São Paulo", 1000),
    ),
    (
        2,
        False,
        -1,
        Decimal("-0.0001"),
        -0.0,
        math.nan,
        "",
        b"",
        dt.date(2026, 11, 22),
        dt.datetime(2026, 11, 22, 10, 0, tzinfo=UTC),
        dt.datetime(1900, 1, 1),
        [],
        {},
        (None, None),
    ),
    (3, None, None, None, math.inf, -math.inf, None, None, None, None, None, None, None, None),
    (
        4,
        True,
        0,
        Decimal("99999999999999.9999"),
        5e-324,
        1e-45,
        "x\ty\n",
        b"abc",
        dt.date(1, 1, 1),
        dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
        dt.datetime(1970, 1, 1),
        ["🚀"],
        {"k": math.nan},
        ("", -5),
    ),
    (
        5,
        False,
        1,
        Decimal("0"),
        1.7976931348623157e308,
        3.4028234663852886e38,
        "'\"\\",
        b"\x01",
        dt.date(2000, 2, 29),
        dt.datetime(2000, 1, 1, tzinfo=UTC),
        dt.datetime(2000, 2, 29, 12),
        [None],
        {"b": None},
        ("x", 0),
    ),
]


def test_spark_and_python_hash_every_row_identically(spark: Any) -> None:
    frame = spark.createDataFrame(ROWS, SCHEMA)
    hashed = frame.select("id", row_hash_column(SCHEMA).alias("h"))
    # Five test rows: a small fixed result, fine to iterate on the driver.
    spark_hashes = {r["id"]: r["h"] for r in hashed.toLocalIterator()}
    python_hashes = {row[0]: row_hash(row, SCHEMA) for row in ROWS}
    assert spark_hashes == python_hashes
    assert len(set(python_hashes.values())) == len(ROWS)
