"""Thin PostgreSQL plumbing: the connection pool and the start-up reachability check."""

from __future__ import annotations

from collections.abc import Mapping

import psycopg
from psycopg_pool import ConnectionPool

from connectors.errors import PostgresUnavailableError
from lakesync.config import PostgresSettings


def describe(settings: PostgresSettings) -> str:
    """`host:port/dbname`, for error messages (never the password)."""
    return f"{settings.host}:{settings.port}/{settings.dbname}"


def check_reachable(settings: PostgresSettings) -> str:
    """Connect once and return the server version, or raise PostgresUnavailableError in one line."""
    try:
        with psycopg.connect(**settings.connection_kwargs()) as conn:
            row = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PostgresUnavailableError(f"PostgreSQL at {describe(settings)} is unreachable: {first_line}") from None
    return str(row[0]) if row else "?"


def open_pool(
    settings: PostgresSettings,
    *,
    name: str = "lakesync",
    session: Mapping[str, str] | None = None,
    min_size: int | None = None,
    max_size: int | None = None,
) -> ConnectionPool:
    """A pool sized from the settings whose connections are checked before each use.

    `check_connection` costs one round trip per checkout, which is negligible next to a batch,
    and turns a connection broken while idle (server restart) into a fresh one instead of an
    error inside the next transaction. `session` holds server settings for every connection of
    the pool, e.g. {"statement_timeout": "60s"}.
    """
    kwargs = settings.connection_kwargs()
    if session:
        kwargs["options"] = " ".join(f"-c {key}={value}" for key, value in session.items())
    return ConnectionPool(
        kwargs=kwargs,
        min_size=settings.pool_min_size if min_size is None else min_size,
        max_size=settings.pool_max_size if max_size is None else max_size,
        max_lifetime=settings.pool_max_lifetime_s,
        timeout=settings.pool_timeout_s,
        check=ConnectionPool.check_connection,
        name=name,
        open=True,
    )


def cancel_statement(conn: psycopg.Connection, timeout_s: float = 2.0) -> None:
    """Ask PostgreSQL to cancel what `conn` runs now; best effort (the server may be down).

    Safe from any thread; the cancelled statement fails with 57014 in the thread running it.
    """
    try:
        conn.cancel_safe(timeout=timeout_s)
    except (psycopg.Error, OSError):
        pass
