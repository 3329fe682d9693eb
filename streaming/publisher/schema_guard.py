"""Schema changes of a source table: carry the ones we can, stop loudly on the rest.

Added columns are carried: the envelope grows and the consumer adds the column. A dropped,
renamed (seen as dropped + added) or retyped column cannot be carried without losing or
misplacing data, so the job stops with an error naming the table, the change and the fix.
The schema last published for a table is recorded in PostgreSQL (`lakesync.stream_source_schema`,
beside the stream's progress): one row written in one statement, so a crash never leaves half a
schema, on any store the checkpoint lives on (S3 has no atomic rename).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from pyspark.sql import types as T

from connectors.postgres_schema import BOOKKEEPING_SCHEMA
from lakesync.config import PostgresSettings
from streaming.publisher.errors import SchemaChangeError

_TABLE = sql.Identifier(BOOKKEEPING_SCHEMA, "stream_source_schema")


@dataclass(frozen=True)
class SchemaChange:
    added: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    retyped: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def unchanged(self) -> bool:
        return not (self.added or self.dropped or self.retyped)

    @property
    def additive(self) -> bool:
        return bool(self.added) and not (self.dropped or self.retyped)

    def describe(self) -> str:
        parts = []
        if self.dropped:
            parts.append(f"dropped column(s) {', '.join(self.dropped)}")
        if self.retyped:
            parts.append(", ".join(f"column {n} changed type {old} -> {new}" for n, old, new in self.retyped))
        if self.added:
            parts.append(f"added column(s) {', '.join(self.added)}")
        return "; ".join(parts) or "no change"


def compare(old: T.StructType, new: T.StructType) -> SchemaChange:
    """What changed from `old` to `new` (by column name; nullability is ignored)."""
    old_types = {f.name: f.dataType for f in old.fields}
    new_types = {f.name: f.dataType for f in new.fields}
    return SchemaChange(
        added=[n for n in new_types if n not in old_types],
        dropped=[n for n in old_types if n not in new_types],
        retyped=[
            (n, old_types[n].simpleString(), new_types[n].simpleString())
            for n in old_types
            if n in new_types and _without_nullability(old_types[n]) != _without_nullability(new_types[n])
        ],
    )


def refusal(table: str, change: SchemaChange) -> SchemaChangeError:
    """The error that stops the job, saying what changed and what to do."""
    return SchemaChangeError(
        f"table {table!r}: the source schema changed in a way lakesync cannot carry: "
        f"{change.describe()}. Nothing after this change was published. To resync, run "
        f"`lakesync rebuild --table {table}` (reloads PostgreSQL from the table's current version "
        "and resets this table's stream), then start `lakesync stream` again."
    )


class SchemaRecord:
    """The source schema last published for one stream, keyed like its progress (`<schema>.<table>`)."""

    def __init__(self, pg: PostgresSettings, target: str) -> None:
        self.pg = pg
        self.target = target

    def load(self) -> T.StructType | None:
        with psycopg.connect(**self.pg.connection_kwargs()) as conn:
            _ensure_table(conn)
            row = conn.execute(sql.SQL("SELECT source_schema FROM {} WHERE target = %s").format(_TABLE), (self.target,))
            found = row.fetchone()
        return None if found is None else T.StructType.fromJson(json.loads(found[0]))

    def save(self, schema: T.StructType) -> None:
        with psycopg.connect(**self.pg.connection_kwargs()) as conn:
            _ensure_table(conn)
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} (target, source_schema, updated_at) VALUES (%s, %s, now())"
                    " ON CONFLICT (target) DO UPDATE SET source_schema = EXCLUDED.source_schema,"
                    " updated_at = EXCLUDED.updated_at"
                ).format(_TABLE),
                (self.target, json.dumps(schema.jsonValue())),
            )


def _ensure_table(conn: psycopg.Connection) -> None:
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(BOOKKEEPING_SCHEMA)))
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (target text PRIMARY KEY, source_schema text NOT NULL,"
            " updated_at timestamptz NOT NULL)"
        ).format(_TABLE)
    )


def _without_nullability(data_type: T.DataType) -> str:
    return data_type.simpleString()
