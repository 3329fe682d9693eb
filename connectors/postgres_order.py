"""The order of a key's changes (changes/order.py) rendered in SQL, for every guarded write.

A position is a (version, rank) pair; PostgreSQL compares row values the way Python compares
tuples, so `changes.order.supersedes(new, old)` becomes `(v, r) > (v', r')` — `>=` when the new
change is a repair. The consumer's target and tombstone guards and the stream state's writes all
render their comparisons here, so there is one definition to read and to change.
"""

from __future__ import annotations

from psycopg import sql

SqlPosition = tuple[sql.Composable, sql.Composable]


def position_of(alias: str, version_column: str, rank: int | sql.Composable) -> SqlPosition:
    """The position of the row `alias` (one of the statement's fixed aliases) with the given rank."""
    version = sql.SQL(alias + ".{}").format(sql.Identifier(version_column))
    return version, rank if isinstance(rank, sql.Composable) else sql.Literal(rank)


def supersedes(new: SqlPosition, old: SqlPosition, *, repair: bool | sql.Composable) -> sql.Composed:
    """`changes.order.supersedes(new, old)`; `repair` says whether `new` is a repair (or an SQL test)."""
    row = sql.SQL("({}, {}) {} ({}, {})")
    strictly = row.format(*new, sql.SQL(">"), *old)
    if repair is True:
        return row.format(*new, sql.SQL(">="), *old)
    if repair is False:
        return strictly
    return sql.SQL("({} OR ({} AND {}))").format(strictly, repair, row.format(*new, sql.SQL(">="), *old))
