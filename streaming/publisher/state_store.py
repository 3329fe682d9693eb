"""The stream's state, kept in PostgreSQL: what lakesync has published for each live key.

One table per target table (one target is fed by one table mapping), beside the consumer's
bookkeeping:

    lakesync."stream_state:<schema>.<table>"  (key text PRIMARY KEY, row_hash bigint, version bigint, rank smallint)

`key` is the canonical key JSON, `row_hash` the canonical row hash of the published image and
(version, rank) its position in the one order of changes (changes/order.py). Only live keys are
held: a delete forgets its key.

- **Read by the keys a micro-batch touches, and only those**: one indexed lookup per key, so a
  micro-batch costs what its change costs, whatever the size of the table.
- **Written by the Spark task that published**, after Kafka acknowledged the messages: a crash
  in between replays the batch against the old state and republishes at worst the same events,
  which the consumer's guards skip.
- **Every write is guarded by the order** (connectors/postgres_order.py): an entry only moves
  forward. Reconcile repairs write the same table with the same guard, so the stream and a
  repair touching one key in either order end with the newer of the two; nothing is rewritten
  wholesale, so there is nothing for a repair to race.
- **Seeded once** from the target table (seed.py); `lakesync rebuild` replaces it in the same
  transaction that swaps the rebuilt table in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from changes.classify import Forget, StateChange, StateEntry
from changes.order import REPAIR_RANK
from connectors.postgres_order import position_of, supersedes
from connectors.postgres_schema import BOOKKEEPING_SCHEMA
from lakesync.config import TableMapping

KEY, ROW_HASH, VERSION, RANK = "key", "row_hash", "version", "rank"
COLUMNS = (KEY, ROW_HASH, VERSION, RANK)
_MAX_IDENTIFIER = 63
_STAGE = sql.Identifier("lakesync_state_stage")


def stream_target(table: TableMapping) -> str:
    """`<schema>.<table>` of the mapping's target: what the stream's state and progress are kept by."""
    return f"{table.target_schema}.{table.target_table}"


@dataclass(frozen=True)
class StateTable:
    """The state table of the stream into one target table."""

    target: str

    @classmethod
    def of(cls, table: TableMapping) -> StateTable:
        return cls(stream_target(table))

    @property
    def name(self) -> str:
        return bounded_name("stream_state:", self.target)

    @property
    def identifier(self) -> sql.Identifier:
        return sql.Identifier(BOOKKEEPING_SCHEMA, self.name)

    @property
    def primary_key(self) -> sql.Identifier:
        """Named after the target, so a rebuild's swap can give the shadow's key the live name."""
        return sql.Identifier(bounded_name("stream_state_pkey:", self.target))

    def shadow(self) -> StateTable:
        """The table a rebuild loads before swapping it in."""
        return StateTable(self.target + "__rebuild")


def bounded_name(prefix: str, name: str) -> str:
    """`<prefix><name>`, shortened with a hash when longer than PostgreSQL allows."""
    full = prefix + name
    if len(full.encode()) <= _MAX_IDENTIFIER:
        return full
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return full.encode()[: _MAX_IDENTIFIER - 9].decode(errors="ignore") + "~" + digest


def create_statement(table: StateTable) -> sql.Composed:
    return sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (key text NOT NULL, row_hash bigint NOT NULL,"
        " version bigint NOT NULL, rank smallint NOT NULL, CONSTRAINT {} PRIMARY KEY (key))"
    ).format(table.identifier, table.primary_key)


def lookup_statement(table: StateTable) -> sql.Composed:
    """Entries of the keys passed as one newline-separated text (key JSON never holds a raw newline)."""
    return sql.SQL(
        "SELECT s.key, s.row_hash, s.version, s.rank"
        " FROM unnest(string_to_array(%s, E'\\n')) AS k(key) JOIN {} s ON s.key = k.key"
    ).format(table.identifier)


def record_statements(table: StateTable) -> tuple[sql.Composed, sql.Composed]:
    """Upsert the staged entries, then forget the staged deletes; both only over older positions."""
    staged = position_of("g", VERSION, sql.SQL("g.rank"))
    held = position_of("s", VERSION, sql.SQL("s.rank"))
    is_repair = sql.SQL("(g.rank = {})").format(sql.Literal(REPAIR_RANK))
    upsert = sql.SQL(
        "INSERT INTO {state} AS s (key, row_hash, version, rank)"
        " SELECT key, row_hash, version, rank FROM {stage} g WHERE g.row_hash IS NOT NULL"
        " ON CONFLICT (key) DO UPDATE SET row_hash = EXCLUDED.row_hash, version = EXCLUDED.version,"
        " rank = EXCLUDED.rank WHERE {newer}"
    ).format(
        state=table.identifier,
        stage=_STAGE,
        newer=supersedes(
            position_of("EXCLUDED", VERSION, sql.SQL("EXCLUDED.rank")),
            held,
            repair=sql.SQL("(EXCLUDED.rank = {})").format(sql.Literal(REPAIR_RANK)),
        ),
    )
    forget = sql.SQL(
        "DELETE FROM {state} s USING {stage} g WHERE g.row_hash IS NULL AND s.key = g.key AND {newer}"
    ).format(state=table.identifier, stage=_STAGE, newer=supersedes(staged, held, repair=is_repair))
    return upsert, forget


def ensure_state_table(conn: psycopg.Connection, table: StateTable) -> None:
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(BOOKKEEPING_SCHEMA)))
    conn.execute(create_statement(table))


def state_table_exists(conn: psycopg.Connection, table: StateTable) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table.identifier.as_string(conn),)).fetchone()
    return bool(row and row[0])


def lookup(conn: psycopg.Connection, table: StateTable, keys: Iterable[str]) -> dict[str, StateEntry]:
    """The state's entries for `keys` (absent keys are not live)."""
    text = "\n".join(keys)
    if not text:
        return {}
    rows = conn.execute(lookup_statement(table), (text,)).fetchall()
    return {key: StateEntry(row_hash, version, rank) for key, row_hash, version, rank in rows}


def record(conn: psycopg.Connection, table: StateTable, changes: Sequence[tuple[str, StateChange]]) -> None:
    """Apply state changes (entries to hold, keys to forget) in the caller's transaction."""
    staged = [(key, change) for key, change in changes if change is not None]
    if not staged:
        return
    conn.execute(
        sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {} (key text, row_hash bigint, version bigint, rank smallint)"
            " ON COMMIT DELETE ROWS"
        ).format(_STAGE)
    )
    with conn.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(_STAGE)) as copy:
        for key, change in staged:
            copy.write_row(_stage_row(key, change))
    upsert, forget = record_statements(table)
    conn.execute(upsert)
    if any(isinstance(change, Forget) for _, change in staged):
        conn.execute(forget)


def _stage_row(key: str, change: StateEntry | Forget) -> tuple[str, int | None, int, int]:
    if isinstance(change, Forget):
        return key, None, change.position[0], change.position[1]
    return key, change.row_hash, change.version, change.rank
