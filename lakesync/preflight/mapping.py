"""A table mapping held against its source's schema, without Spark: pure, unit-tested with plain data.

What can be known from the schema alone is checked: renamed source columns exist, key columns
exist (and are declared NOT NULL), and every column whose type is known (a source column, or a
cast) maps to a PostgreSQL type (changes/type_mapping.py, the rules the stream applies). A column
computed by a SQL expression has a type only Spark can tell: the stream checks it at start-up.
"""

from __future__ import annotations

import re

from pyspark.sql import types as T

from connectors.errors import UnsupportedTypeError
from connectors.spark_types import pg_type
from lakesync.config import ColumnMapping, TableMapping
from lakesync.errors import NotReadyError
from lakesync.preflight.findings import Finding, fail, ok, skip, warn

_DDL_TYPES: dict[str, T.DataType] = {
    "boolean": T.BooleanType(),
    "tinyint": T.ByteType(),
    "byte": T.ByteType(),
    "smallint": T.ShortType(),
    "short": T.ShortType(),
    "int": T.IntegerType(),
    "integer": T.IntegerType(),
    "bigint": T.LongType(),
    "long": T.LongType(),
    "float": T.FloatType(),
    "real": T.FloatType(),
    "double": T.DoubleType(),
    "string": T.StringType(),
    "binary": T.BinaryType(),
    "date": T.DateType(),
    "timestamp": T.TimestampType(),
    "timestamp_ltz": T.TimestampType(),
    "timestamp_ntz": T.TimestampNTZType(),
    "variant": T.VariantType(),
    "void": T.NullType(),
}
_DECIMAL = re.compile(r"^(?:decimal|dec|numeric)(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?$")
_TEXT = re.compile(r"^(?:var)?char\(\s*\d+\s*\)$")
_NESTED = re.compile(r"^(?:array|map|struct)\s*<")


def cast_type(ddl: str) -> T.DataType | None:
    """The Spark type a `cast` names, or None when only Spark could tell (checked at stream start)."""
    text = ddl.strip().lower()
    if text in _DDL_TYPES:
        return _DDL_TYPES[text]
    decimal = _DECIMAL.match(text)
    if decimal:
        return T.DecimalType(int(decimal.group(1) or 10), int(decimal.group(2) or 0))
    if _TEXT.match(text):
        return T.StringType()
    if _NESTED.match(text):
        return T.ArrayType(T.StringType())  # any nested type becomes jsonb: the element type does not matter
    if text.startswith("interval"):
        return T.DayTimeIntervalType()
    return None


def check_mapping(table: TableMapping, schema: T.StructType) -> list[Finding]:
    """Findings for the mapping's columns and keys against the source schema."""
    subject = f"table {table.name}"
    fields = {f.name: f for f in schema.fields}
    specs = table.columns or [ColumnMapping(name=name) for name in fields]
    found = [finding for spec in specs if (finding := _column(subject, table, spec, fields)) is not None]
    found += [_key(subject, table, key, specs, fields) for key in table.key_columns]
    if not any(f.status == "fail" for f in found):
        found.insert(
            0, ok(subject, f"{len(specs)} column(s) map to PostgreSQL types; key {', '.join(table.key_columns)}")
        )
    return found


def _origin(spec: ColumnMapping) -> str | None:
    """The source column a target column is read from (None for an expression)."""
    return spec.source or (spec.name if spec.expr is None else None)


def _column(subject: str, table: TableMapping, spec: ColumnMapping, fields: dict[str, T.StructField]) -> Finding | None:
    origin = _origin(spec)
    if origin is not None and origin not in fields:
        return fail(
            subject,
            f"column {spec.name!r} reads source column {origin!r}, which {table.source} does not have "
            f"(it has: {', '.join(fields)})",
            "fix the source of this column in [[tables.columns]]",
            NotReadyError,
        )
    data_type = cast_type(spec.cast) if spec.cast else (fields[origin].dataType if origin else None)
    if data_type is None:
        return skip(subject, f"column {spec.name!r}: type known only to Spark (checked when the stream starts)")
    try:
        pg_type(data_type, spec.name)
    except UnsupportedTypeError as exc:  # its message names the column, the type and the fix
        return fail(subject, str(exc), "", NotReadyError)
    return None


def _key(
    subject: str, table: TableMapping, key: str, specs: list[ColumnMapping], fields: dict[str, T.StructField]
) -> Finding:
    spec = next((s for s in specs if s.name == key), None)
    if spec is None:  # only without [[tables.columns]]: the config validates keys against mapped names
        return fail(
            subject,
            f"key column {key!r} is not a column of {table.source} (it has: {', '.join(fields)})",
            "set tables.key_columns to the columns that identify a row",
            NotReadyError,
        )
    origin = _origin(spec)
    if origin is None or origin not in fields:
        return skip(subject, f"key column {key!r} is an expression (checked when the stream starts)")
    if fields[origin].nullable:
        return warn(
            subject,
            f"key column {key!r} (source {origin!r}) is nullable: rows with a null key go to the dead-letter topic",
            f"declare it NOT NULL: ALTER TABLE {delta_name(table)} ALTER COLUMN {origin} SET NOT NULL",
        )
    return ok(subject, f"key column {key!r} is NOT NULL at the source")


def delta_name(table: TableMapping) -> str:
    """How Spark SQL names the source table."""
    return f"delta.`{table.source_path}`" if table.source_path else table.source
