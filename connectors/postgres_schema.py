"""Target and bookkeeping tables in PostgreSQL: introspection, planning and DDL.

A target table holds the user's columns (from the envelope's `columns`, see
changes/type_mapping.py) plus two bookkeeping columns: `_lakesync_version` (the Delta version of
the row's image, the version guard) and `_lakesync_commit_ts` (that version's commit time).
Everything else lakesync keeps lives in the `lakesync` schema:

- `lakesync.consumer_offsets`: the next Kafka offset to read per (group, topic, partition),
  written in the same transaction as the rows it covers, and the claim (`owner`) of the consumer
  that writes the partition now;
- one tombstone table per target, `lakesync."tombstones:<schema>.<table>"`: the key columns,
  the version of the delete and when it was applied, so a late older upsert cannot bring a
  deleted row back. Rows older than the retention are cleaned up.

Planning (`plan_table`) is pure; the functions taking a connection run the DDL. All DDL runs
under one advisory lock so consumers starting together do not race on `CREATE ... IF NOT EXISTS`.
Every identifier goes through `psycopg.sql`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from changes.type_mapping import TargetColumn
from connectors.errors import SchemaMismatchError

BOOKKEEPING_SCHEMA = "lakesync"
OFFSETS_TABLE = "consumer_offsets"
FLOORS = sql.Identifier(BOOKKEEPING_SCHEMA, "target_floors")
VERSION_COLUMN = "_lakesync_version"
COMMIT_TS_COLUMN = "_lakesync_commit_ts"
DELETED_AT_COLUMN = "_lakesync_deleted_at"
BOOKKEEPING_COLUMNS = (TargetColumn(VERSION_COLUMN, "bigint"), TargetColumn(COMMIT_TS_COLUMN, "timestamptz"))
MAX_IDENTIFIER_BYTES = 63
BOOKKEEPING_PREFIX = "_lakesync_"
# Any constant works: it only has to be the same in every lakesync process.
_DDL_LOCK_KEY = 0x6C616B6573796E63  # "lakesync"

# format_type() spellings that differ from the envelope's type names.
_TYPE_ALIASES = {
    "timestamp with time zone": "timestamptz",
    "timestamp without time zone": "timestamp",
}


@dataclass(frozen=True)
class TableRef:
    schema: str
    table: str

    @property
    def identifier(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.table)

    @property
    def tombstones(self) -> sql.Identifier:
        return sql.Identifier(BOOKKEEPING_SCHEMA, tombstone_table_name(self))

    @property
    def floor_key(self) -> str:
        """The target's row in `lakesync.target_floors`.

        A rebuild loads the target at version V and records V as its floor: it re-asserts every
        key at V, like a repair of the whole table (position (V, REPAIR_RANK)), so an event at or
        before V still waiting in Kafka — an upsert of a key deleted before V, which nothing would
        delete again — never applies over it.
        """
        return f"{self.schema}.{self.table}"

    def __str__(self) -> str:
        return f"{self.schema}.{self.table}"


@dataclass(frozen=True)
class ExistingTable:
    """What introspection found: columns in order with normalized types, primary key columns."""

    columns: dict[str, str]
    primary_key: tuple[str, ...]


@dataclass(frozen=True)
class TablePlan:
    """What must change so the target can take rows of `columns` (empty plan: nothing)."""

    create: bool = False
    add: tuple[TargetColumn, ...] = ()
    problems: tuple[str, ...] = field(default=())


def normalize_type(pg_type: str) -> str:
    """The envelope's spelling of a PostgreSQL type as format_type() prints it."""
    lowered = " ".join(pg_type.lower().split())
    return _TYPE_ALIASES.get(lowered, lowered.replace(", ", ","))


def tombstone_table_name(ref: TableRef) -> str:
    """`tombstones:<schema>.<table>`, shortened with a hash when longer than PostgreSQL allows."""
    name = f"tombstones:{ref.schema}.{ref.table}"
    if len(name.encode()) <= MAX_IDENTIFIER_BYTES:
        return name
    digest = hashlib.sha256(f"{ref.schema}\0{ref.table}".encode()).hexdigest()[:8]
    return name.encode()[: MAX_IDENTIFIER_BYTES - 9].decode(errors="ignore") + "~" + digest


def plan_table(
    existing: ExistingTable | None,
    columns: Sequence[TargetColumn],
    key_columns: Sequence[str],
    *,
    ref: TableRef,
    name: str,
    auto_create: bool,
    add_columns: bool,
) -> TablePlan:
    """Compare the envelope's columns with the target table; problems say how to fix them."""
    rebuild = f"run `lakesync rebuild --table {name}` to recreate {ref} from the source"
    wanted = {c.name: normalize_type(c.pg_type) for c in columns}
    problems = [
        f"envelope column {c!r} uses a name lakesync reserves" for c in wanted if c.startswith(BOOKKEEPING_PREFIX)
    ]
    problems += [f"key column {k!r} is missing from the envelope's columns" for k in key_columns if k not in wanted]
    if existing is None:
        if not auto_create:
            problems.append(f"target table {ref} does not exist and consumer.auto_create_tables is off")
        return TablePlan(create=not problems, problems=tuple(problems))
    if existing.primary_key != tuple(key_columns):
        problems.append(
            f"target table {ref} has primary key ({', '.join(existing.primary_key) or 'none'}) but the "
            f"table mapping's key is ({', '.join(key_columns)}); {rebuild}"
        )
    for bookkeeping in BOOKKEEPING_COLUMNS:
        if bookkeeping.name not in existing.columns:
            problems.append(f"target table {ref} has no {bookkeeping.name} column (not created by lakesync); {rebuild}")
    for column, pg_type in wanted.items():
        have = existing.columns.get(column)
        if have is not None and have != pg_type:
            problems.append(f"column {ref}.{column} is {have} but the source now sends {pg_type}; {rebuild}")
    missing = tuple(c for c in columns if c.name not in existing.columns)
    if missing and not add_columns:
        names = ", ".join(c.name for c in missing)
        problems.append(f"the source added column(s) {names} and consumer.add_columns is off; {rebuild}")
    return TablePlan(add=missing if add_columns else (), problems=tuple(problems))


# --- I/O -----------------------------------------------------------------------------------


def lock_ddl(conn: psycopg.Connection) -> None:
    """Serialize lakesync's DDL across processes until the current transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK_KEY,))


def ensure_bookkeeping(conn: psycopg.Connection) -> None:
    """The `lakesync` schema, its offsets table and the targets' floors."""
    lock_ddl(conn)
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(BOOKKEEPING_SCHEMA)))
    ensure_floors(conn)
    offsets = sql.Identifier(BOOKKEEPING_SCHEMA, OFFSETS_TABLE)
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} ("
            " group_id text NOT NULL, topic text NOT NULL, partition integer NOT NULL,"
            " next_offset bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(),"
            " PRIMARY KEY (group_id, topic, partition))"
        ).format(offsets)
    )
    # The claim a consumer holds on the partition (streaming/consumer/claims.py), added in place to
    # tables from before fencing; looked up first, so a start-up never queues an ALTER TABLE
    # behind running batches.
    has_owner = conn.execute(
        "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(format('%%I.%%I', %s::text, %s::text))"
        " AND attname = 'owner' AND NOT attisdropped",
        (BOOKKEEPING_SCHEMA, OFFSETS_TABLE),
    ).fetchone()
    if has_owner is None:
        conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN owner text").format(offsets))


def ensure_floors(conn: psycopg.Connection) -> None:
    """`lakesync.target_floors`: per target, the version a rebuild loaded (see `TableRef.floor`)."""
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(BOOKKEEPING_SCHEMA)))
    conn.execute(
        sql.SQL("CREATE TABLE IF NOT EXISTS {} (target text PRIMARY KEY, version bigint NOT NULL)").format(FLOORS)
    )


def set_floor(conn: psycopg.Connection, ref: TableRef, version: int) -> None:
    """The target now holds the source at `version` (a rebuild): no change at or before it applies."""
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (target, version) VALUES (%s, %s) ON CONFLICT (target) DO UPDATE SET version = EXCLUDED.version"
        ).format(FLOORS),
        (ref.floor_key, version),
    )


def describe_table(conn: psycopg.Connection, ref: TableRef) -> ExistingTable | None:
    """Columns (normalized types) and primary key of a table, or None when it does not exist."""
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod)"
        " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped"
        " ORDER BY a.attnum",
        (ref.schema, ref.table),
    ).fetchall()
    if not rows:
        return None
    key = conn.execute(
        "SELECT a.attname FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
        " WHERE n.nspname = %s AND c.relname = %s AND i.indisprimary"
        " ORDER BY array_position(i.indkey::int2[], a.attnum)",
        (ref.schema, ref.table),
    ).fetchall()
    return ExistingTable({name: normalize_type(t) for name, t in rows}, tuple(r[0] for r in key))


def create_target_table(
    conn: psycopg.Connection,
    ref: TableRef,
    columns: Sequence[TargetColumn],
    key_columns: Sequence[str],
    *,
    primary_key: bool = True,
) -> None:
    """CREATE TABLE with the envelope's columns, the bookkeeping columns and the key as primary key.

    `primary_key=False` leaves the key out, for a bulk load that adds it afterwards (rebuild).
    """
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(ref.schema)))
    definitions = [_column_definition(c) for c in columns]
    definitions.append(sql.SQL("{} bigint NOT NULL").format(sql.Identifier(VERSION_COLUMN)))
    definitions.append(sql.SQL("{} timestamptz").format(sql.Identifier(COMMIT_TS_COLUMN)))
    if primary_key:
        definitions.append(sql.SQL("PRIMARY KEY ({})").format(_identifiers(key_columns)))
    conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(ref.identifier, sql.SQL(", ").join(definitions)))


def add_columns(conn: psycopg.Connection, ref: TableRef, columns: Sequence[TargetColumn]) -> None:
    """ALTER TABLE ... ADD COLUMN IF NOT EXISTS, one statement for all new columns (nullable)."""
    clauses = [sql.SQL("ADD COLUMN IF NOT EXISTS {}").format(_column_definition(c)) for c in columns]
    conn.execute(sql.SQL("ALTER TABLE {} {}").format(ref.identifier, sql.SQL(", ").join(clauses)))


def ensure_tombstone_table(conn: psycopg.Connection, ref: TableRef, key_columns: Sequence[TargetColumn]) -> None:
    """The target's tombstone table: its key columns, the delete's version and when it was applied."""
    name = tombstone_table_name(ref)
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} ({}, {} bigint NOT NULL, {} timestamptz NOT NULL DEFAULT now(),"
            " PRIMARY KEY ({}))"
        ).format(
            ref.tombstones,
            sql.SQL(", ").join(_column_definition(c) for c in key_columns),
            sql.Identifier(VERSION_COLUMN),
            sql.Identifier(DELETED_AT_COLUMN),
            _identifiers(c.name for c in key_columns),
        )
    )
    conn.execute(
        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
            sql.Identifier(_index_name(name)), ref.tombstones, sql.Identifier(DELETED_AT_COLUMN)
        )
    )


def _index_name(table_name: str) -> str:
    digest = hashlib.sha256(table_name.encode()).hexdigest()[:12]
    return f"tombstones_deleted_at_{digest}"


def _column_definition(column: TargetColumn) -> sql.Composed:
    # Types come from the envelope's closed vocabulary (type_mapping.py); they are SQL, not names.
    return sql.SQL("{} {}").format(sql.Identifier(column.name), sql.SQL(_checked_type(column.pg_type)))


def _checked_type(pg_type: str) -> str:
    checked = allowed_type(pg_type)
    if checked is None:
        raise SchemaMismatchError(f"unsupported PostgreSQL type {pg_type!r} in an envelope")
    return checked


def allowed_type(pg_type: object) -> str | None:
    """The type in lakesync's vocabulary (changes/type_mapping.py), normalized; None if it is not one.

    Type names arrive in envelopes, from whoever can produce to a topic, and become SQL: only
    names from this closed list, or `numeric(p,s)` with PostgreSQL's bounds, ever reach a statement.
    """
    if not isinstance(pg_type, str):
        return None
    normalized = normalize_type(pg_type)
    if normalized in _KNOWN_TYPES:
        return normalized
    match = _NUMERIC.fullmatch(normalized)
    if match and 1 <= int(match[1]) <= _MAX_NUMERIC_PRECISION and int(match[2]) <= int(match[1]):
        return f"numeric({int(match[1])},{int(match[2])})"
    return None


_NUMERIC = re.compile(r"numeric\((\d{1,4}),(\d{1,4})\)")
_MAX_NUMERIC_PRECISION = 1000


_KNOWN_TYPES = frozenset(
    {
        "boolean",
        "smallint",
        "integer",
        "bigint",
        "real",
        "double precision",
        "numeric",
        "text",
        "bytea",
        "date",
        "timestamptz",
        "timestamp",
        "jsonb",
    }
)


def _identifiers(names: Iterable[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)
