"""How far the stream has published each table, kept in PostgreSQL beside its state.

`lakesync.stream_progress`, one row per stream, keyed by its target table (`<schema>.<table>`):

- `completed_version`: the newest Delta version whose changes are all published and recorded in
  the state. It comes from the Delta source's end offset after a batch (`completed_from_offset`):
  `(V, base index)` means nothing of V was read yet, so V - 1 is complete; `(V, i)` means V was
  read up to its file i: V is complete when i is V's last file (Delta's source stops there, not
  past V, when V is the newest commit), else only V - 1 is.
- `published_version`: the newest version any published change came from.
- `seeded`: the state was seeded from the target (streaming/publisher/seed.py).
- `resume_version`: where a stream without a checkpoint starts its change feed, set by
  `lakesync rebuild` to the version it loaded (that version's own changes then diff as no-ops
  against the rebuilt state; Delta refuses a start version that does not exist yet, and V + 1
  may not).

Both versions only move forward (`GREATEST`): a restart that reads nothing new, or an end offset
that says less than a previous one, never takes them back. Only `lakesync rebuild` sets them
(`reset_progress`), to the version it loaded. `lakesync reconcile` pins its comparison to the
newest version the stream has completely published (see `pin_version`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from connectors.postgres_schema import BOOKKEEPING_SCHEMA
from lakesync.config import PostgresSettings

_TABLE = sql.Identifier(BOOKKEEPING_SCHEMA, "stream_progress")


@dataclass(frozen=True)
class Progress:
    completed_version: int | None
    published_version: int | None
    batch_id: int | None
    updated_at: dt.datetime | None
    seeded: bool = False
    resume_version: int | None = None


def completed_from_offset(end_offset: Any, files_in: Callable[[int], int | None]) -> int | None:
    """The newest completely read version given a Delta source end offset (dict or JSON).

    `files_in(V)`: how many files Delta's change-feed source indexes in commit V (None: unknown).
    An offset into the initial snapshot, or at a base or metadata index, leaves V incomplete.
    """
    offset = json.loads(end_offset) if isinstance(end_offset, str) else end_offset
    if not isinstance(offset, dict) or "reservoirVersion" not in offset:
        return None
    version, index = int(offset["reservoirVersion"]), int(offset.get("index", -1))
    if index < 0 or offset.get("isStartingVersion"):
        return version - 1
    files = files_in(version)
    return version if files is not None and index >= files - 1 else version - 1


def end_offset_of(query_progress: dict[str, Any]) -> Any:
    """The first source's end offset in a StreamingQueryProgress (as a dict), if any."""
    sources = query_progress.get("sources") or []
    return sources[0].get("endOffset") if sources else None


def ensure_progress_table(conn: psycopg.Connection) -> None:
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(BOOKKEEPING_SCHEMA)))
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (target text PRIMARY KEY, seeded boolean NOT NULL DEFAULT false,"
            " completed_version bigint, published_version bigint, batch_id bigint, updated_at timestamptz,"
            " resume_version bigint)"
        ).format(_TABLE)
    )


def record_progress(
    conn: psycopg.Connection, target: str, *, completed: int | None, published: int | None, batch_id: int
) -> None:
    """Move the table's progress forward (never back)."""
    conn.execute(
        sql.SQL(
            "INSERT INTO {t} AS p (target, completed_version, published_version, batch_id, updated_at)"
            " VALUES (%s, %s, %s, %s, now()) ON CONFLICT (target) DO UPDATE SET"
            " completed_version = GREATEST(p.completed_version, EXCLUDED.completed_version),"
            " published_version = GREATEST(p.published_version, EXCLUDED.published_version, EXCLUDED.completed_version),"
            " batch_id = EXCLUDED.batch_id, updated_at = EXCLUDED.updated_at"
        ).format(t=_TABLE),
        (target, completed, published if published is not None else completed, batch_id),
    )


def reset_progress(conn: psycopg.Connection, target: str, version: int) -> None:
    """A rebuild loaded the table at `version`: the stream resumes after it, state seeded."""
    conn.execute(
        sql.SQL(
            "INSERT INTO {t} AS p (target, seeded, completed_version, published_version, batch_id, updated_at,"
            " resume_version) VALUES (%s, true, %s, %s, -1, now(), %s) ON CONFLICT (target) DO UPDATE SET"
            " seeded = true, completed_version = EXCLUDED.completed_version,"
            " published_version = EXCLUDED.published_version, batch_id = -1, updated_at = EXCLUDED.updated_at,"
            " resume_version = EXCLUDED.resume_version"
        ).format(t=_TABLE),
        (target, version, version, version),
    )


def mark_seeded(conn: psycopg.Connection, target: str) -> None:
    conn.execute(
        sql.SQL(
            "INSERT INTO {t} (target, seeded, updated_at) VALUES (%s, true, now())"
            " ON CONFLICT (target) DO UPDATE SET seeded = true, updated_at = EXCLUDED.updated_at"
        ).format(t=_TABLE),
        (target,),
    )


def load_progress(conn: psycopg.Connection, target: str) -> Progress | None:
    """The table's recorded progress, or None when the stream never ran (or the table is absent)."""
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (_TABLE.as_string(conn),)).fetchone()
    if not exists or not exists[0]:
        return None
    row = conn.execute(
        sql.SQL(
            "SELECT completed_version, published_version, batch_id, updated_at, seeded, resume_version"
            " FROM {} WHERE target = %s"
        ).format(_TABLE),
        (target,),
    ).fetchone()
    return Progress(*row) if row else None


def read_progress(pg: PostgresSettings, target: str) -> Progress | None:
    """`load_progress` over a connection of its own (for commands outside the stream)."""
    with psycopg.connect(**pg.connection_kwargs()) as conn:
        return load_progress(conn, target)
