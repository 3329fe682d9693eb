"""A table mapping held against a source schema, without Spark: plain StructTypes in, findings out."""

from __future__ import annotations

from typing import Any

import pytest
from pyspark.sql import types as T

from lakesync.config import TableMapping
from lakesync.errors import NotReadyError
from lakesync.preflight.findings import Finding
from lakesync.preflight.mapping import cast_type, check_mapping

SCHEMA = T.StructType(
    [
        T.StructField("id", T.LongType(), nullable=False),
        T.StructField("name", T.StringType()),
        T.StructField("payload", T.VariantType()),
        T.StructField("code", T.IntegerType()),
    ]
)


def mapping(**fields: Any) -> TableMapping:
    fields.setdefault("key_columns", ["id"])
    return TableMapping(name="people", source_path="/lake/people", target_table="people", **fields)


def failures(found: list[Finding]) -> list[str]:
    assert all(f.error is NotReadyError for f in found if f.status == "fail")
    return [f.line for f in found if f.status == "fail"]


def test_a_fitting_mapping_has_no_failure_and_says_the_key_is_not_null() -> None:
    found = check_mapping(mapping(columns=[{"name": "id"}, {"name": "full_name", "source": "name"}]), SCHEMA)
    assert failures(found) == []
    assert any(f.status == "ok" and "key column 'id' is NOT NULL" in f.detail for f in found)


def test_pass_through_of_an_unmappable_type_fails_naming_the_column_and_the_fix() -> None:
    (line,) = failures(check_mapping(mapping(), SCHEMA))
    assert "column 'payload' has type variant" in line and "cast it in the table mapping" in line


def test_a_key_the_source_lacks_fails_listing_the_columns_it_has() -> None:
    schema = T.StructType([f for f in SCHEMA.fields if f.name != "payload"])
    (line,) = failures(check_mapping(mapping(key_columns=["person_id"]), schema))
    assert "key column 'person_id' is not a column of /lake/people (it has: id, name, code)" in line
    assert "tables.key_columns" in line


def test_a_nullable_key_is_a_warning_with_the_alter_table_that_fixes_it() -> None:
    (warning,) = [
        f
        for f in check_mapping(mapping(key_columns=["code"], columns=[{"name": "code"}]), SCHEMA)
        if f.status == "warn"
    ]
    assert (
        "nullable" in warning.detail
        and "ALTER TABLE delta.`/lake/people` ALTER COLUMN code SET NOT NULL" in warning.fix
    )


def test_a_renamed_column_must_exist_at_the_source() -> None:
    (line,) = failures(check_mapping(mapping(columns=[{"name": "id"}, {"name": "city", "source": "cidade"}]), SCHEMA))
    assert "column 'city' reads source column 'cidade'" in line


def test_a_cast_decides_the_type_and_an_expression_is_left_to_spark() -> None:
    columns = [
        {"name": "id"},
        {"name": "raw", "source": "payload", "cast": "string"},  # variant cast to string: fine
        {"name": "span", "source": "name", "cast": "interval day"},  # not storable
        {"name": "loud", "expr": "upper(name)"},
    ]
    found = check_mapping(mapping(columns=columns), SCHEMA)
    (line,) = failures(found)
    assert "column 'span' has type interval day" in line
    assert any(f.status == "skip" and "'loud'" in f.detail for f in found)


@pytest.mark.parametrize(
    ("ddl", "expected"),
    [
        ("int", T.IntegerType()),
        ("BIGINT", T.LongType()),
        ("decimal(12,2)", T.DecimalType(12, 2)),
        ("decimal", T.DecimalType(10, 0)),
        ("varchar(20)", T.StringType()),
        ("timestamp_ntz", T.TimestampNTZType()),
        ("array<string>", T.ArrayType(T.StringType())),
        ("some_udt", None),
    ],
)
def test_cast_types_are_read_from_their_sql_names(ddl: str, expected: T.DataType | None) -> None:
    assert cast_type(ddl) == expected
