"""Parallel COPY into PostgreSQL from Spark partitions (used by `lakesync rebuild`).

Spark renders each row as one CSV line in PostgreSQL's input formats (`csv_line`); each
partition then streams its lines through one connection with `COPY ... FROM STDIN (FORMAT csv)`,
so Python only joins ready-made lines. The number of partitions bounds the connections.

CSV keeps NULL and the empty string apart (an unquoted empty field is NULL, `""` is empty),
and nested values arrive as JSON text, which jsonb parses.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg import sql

from changes.envelope import SPARK_JSON_OPTIONS
from connectors.spark import column
from connectors.spark_types import is_nested

if TYPE_CHECKING:
    from pyspark.sql import Column
    from pyspark.sql.types import StructType

COPY_COUNT_SCHEMA = "copied long"
# PostgreSQL's CSV: quotes doubled (Spark escapes with a backslash by default), whitespace kept
# (Spark's CSV writer trims it by default), NULL as an unquoted empty field.
_CSV_OPTIONS = {
    **SPARK_JSON_OPTIONS,
    "escape": '"',
    "ignoreLeadingWhiteSpace": "false",
    "ignoreTrailingWhiteSpace": "false",
    "nullValue": "",
    "emptyValue": '""',
}


def csv_line(schema: StructType, extra: Sequence[Column] = ()) -> Column:
    """One CSV line per row: the schema's columns in PostgreSQL input form, then `extra`."""
    from pyspark.sql import functions as F

    fields = [_copy_ready(column(f.name), f.dataType).alias(f.name) for f in schema.fields]
    fields += [c.alias(f"_extra_{i}") for i, c in enumerate(extra)]
    return F.to_csv(F.struct(*fields), _CSV_OPTIONS)


@dataclass(frozen=True)
class CopyWriter:
    """mapInArrow function: COPY a partition's `line` column into one table; yields the count."""

    connection_kwargs: dict[str, Any]
    table: tuple[str, str]
    columns: Sequence[str]

    def __call__(self, batches: Iterable[Any]) -> Iterator[Any]:
        import psycopg
        import pyarrow as pa

        statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
            sql.Identifier(*self.table), sql.SQL(", ").join(sql.Identifier(c) for c in self.columns)
        )
        copied = 0
        with psycopg.connect(**self.connection_kwargs) as conn, conn.cursor().copy(statement) as copy:
            for batch in batches:
                lines = batch.column(0).to_pylist()
                copy.write("\n".join(lines) + "\n" if lines else "")
                copied += len(lines)
        yield pa.RecordBatch.from_pydict({"copied": [copied]})


def _copy_ready(c: Column, data_type: Any) -> Column:
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if isinstance(data_type, T.DecimalType):
        return c.cast("string")
    if isinstance(data_type, T.BinaryType):
        return F.concat(F.lit("\\x"), F.hex(c))  # bytea hex input
    if is_nested(data_type):
        return F.to_json(c, SPARK_JSON_OPTIONS)
    return c
