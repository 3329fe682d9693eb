"""Schema changes of a source table: carry the ones we can, stop loudly on the rest.

Added columns are carried: the envelope grows and the consumer adds the column. A dropped,
renamed (seen as dropped + added) or retyped column cannot be carried without losing or
misplacing data, so the job stops with an error naming the table, the change and the fix.
The schema last published for a table is recorded next to its checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import types as T

from streaming.publisher.errors import SchemaChangeError


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
    """The source schema last published for one table, in `<state>/<table>/source_schema.json`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> T.StructType | None:
        if not self.path.exists():
            return None
        return T.StructType.fromJson(json.loads(self.path.read_text()))

    def save(self, schema: T.StructType) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(schema.jsonValue(), indent=1))
        tmp.replace(self.path)  # atomic: a crash never leaves half a schema behind


def _without_nullability(data_type: T.DataType) -> str:
    return data_type.simpleString()
