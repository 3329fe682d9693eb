"""The SQL of one batch, built with psycopg.sql (pure: no connection needed to build it).

Per group of staged rows (one table, one shape), inside the batch's transaction:

1. `CREATE TEMP TABLE <stage> (...) ON COMMIT DROP` with the shape's columns (bytea staged as
   base64 text, decoded in SQL) and the trailer: version, commit timestamp, is-delete, is-repair;
2. `COPY <stage> FROM STDIN`;
3. one set-based upsert per kind of event present (stream, repair):
   `INSERT ... SELECT ... WHERE the change supersedes the key's tombstone ON CONFLICT (key) DO
   UPDATE ... WHERE the change supersedes the target row`;
4. one set-based delete that also records the tombstones (same guard).

Every guard is the order of changes/order.py rendered as a row comparison: a change at
`(version, rank)` supersedes a target row at `(_lakesync_version, IMAGE_RANK)` or a tombstone at
`(_lakesync_version, DELETE_RANK)` when its position is greater (a repair's: greater or equal).
So an upsert of commit V replaces a tombstone of the same commit V (the commit's final state of
the key is its image), and a delete of commit V leaves a row of commit V alone.

Then the consumed offsets are upserted into lakesync.consumer_offsets, and the transaction commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from psycopg import sql

from changes.order import DELETE_RANK, IMAGE_RANK, REPAIR_RANK
from changes.type_mapping import TargetColumn
from connectors.postgres_schema import (
    BOOKKEEPING_SCHEMA,
    COMMIT_TS_COLUMN,
    DELETED_AT_COLUMN,
    OFFSETS_TABLE,
    VERSION_COLUMN,
    TableRef,
    normalize_type,
)
from streaming.consumer.decode import Shape

_VERSION = sql.Identifier(VERSION_COLUMN)
_COMMIT_TS = sql.Identifier(COMMIT_TS_COLUMN)
_DELETED_AT = sql.Identifier(DELETED_AT_COLUMN)
_IS_DELETE = sql.Identifier("_lakesync_delete")
_IS_REPAIR = sql.Identifier("_lakesync_repair")
_OFFSETS = sql.Identifier(BOOKKEEPING_SCHEMA, OFFSETS_TABLE)


def staging_type(pg_type: str) -> str:
    """The column type rows are staged as: the target's, except bytea (base64 text in envelopes)."""
    normalized = normalize_type(pg_type)
    return "text" if normalized == "bytea" else normalized


def create_stage(stage: str, shape: Shape) -> sql.Composed:
    columns = [sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(staging_type(c.pg_type))) for c in shape.columns]
    columns += [
        sql.SQL("{} bigint").format(_VERSION),
        sql.SQL("{} timestamptz").format(_COMMIT_TS),
        sql.SQL("{} boolean").format(_IS_DELETE),
        sql.SQL("{} boolean").format(_IS_REPAIR),
    ]
    return sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(
        sql.Identifier(stage), sql.SQL(", ").join(columns)
    )


def copy_stage(stage: str) -> sql.Composed:
    return sql.SQL("COPY {} FROM STDIN").format(sql.Identifier(stage))


def upsert(ref: TableRef, stage: str, shape: Shape, *, repair: bool) -> sql.Composed:
    """Insert or update the stage's upserts of one kind; returns nothing, rowcount = rows written."""
    change_rank = REPAIR_RANK if repair else IMAGE_RANK
    names = [sql.Identifier(c.name) for c in shape.columns]
    values = [_staged(c) for c in shape.columns]
    updates = [sql.SQL("{0} = EXCLUDED.{0}").format(n) for n in names[shape.key_count :]]
    updates += [sql.SQL("{0} = EXCLUDED.{0}").format(_VERSION), sql.SQL("{0} = EXCLUDED.{0}").format(_COMMIT_TS)]
    return sql.SQL(
        "INSERT INTO {target} AS t ({names}, {version}, {commit_ts})"
        " SELECT {values}, s.{version}, s.{commit_ts} FROM {stage} s"
        " WHERE NOT s.{is_delete} AND s.{is_repair} = {repair}"
        " AND NOT EXISTS (SELECT FROM {tombstones} d WHERE {key_match_d} AND NOT {over_tombstone})"
        " ON CONFLICT ({keys}) DO UPDATE SET {updates}"
        " WHERE {over_row}"
    ).format(
        target=ref.identifier,
        names=sql.SQL(", ").join(names),
        version=_VERSION,
        commit_ts=_COMMIT_TS,
        values=sql.SQL(", ").join(values),
        stage=sql.Identifier(stage),
        is_delete=_IS_DELETE,
        is_repair=_IS_REPAIR,
        repair=sql.Literal(repair),
        tombstones=ref.tombstones,
        key_match_d=_key_match("d", shape.key_columns),
        over_tombstone=supersedes(_at("s", change_rank), _at("d", DELETE_RANK), repair=repair),
        keys=sql.SQL(", ").join(names[: shape.key_count]),
        updates=sql.SQL(", ").join(updates),
        over_row=supersedes(_at("EXCLUDED", change_rank), _at("t", IMAGE_RANK), repair=repair),
    )


def delete(ref: TableRef, stage: str, shape: Shape, *, target_exists: bool = True) -> sql.Composed:
    """Delete the stage's deletes from the target and record their tombstones.

    Returns one row: (rows deleted from the target, tombstones written or advanced). A delete
    removes a row whose version is older (or, for a repair, the same); its tombstone is kept
    even when there was no row, so a late upsert of an older version stays out.
    """
    keys = [sql.Identifier(c.name) for c in shape.key_columns]
    is_repair = sql.SQL("s.{}").format(_IS_REPAIR)
    deleting = _at("s", sql.SQL("CASE WHEN {} THEN {} ELSE {} END").format(is_repair, REPAIR_RANK, DELETE_RANK))
    removed = sql.SQL("SELECT 1 WHERE false")
    # A delete superseded by the live row (an image of its own commit or later) leaves no tombstone.
    superseded = sql.SQL("false")
    if target_exists:
        removed = sql.SQL(
            "DELETE FROM {target} t USING {stage} s WHERE s.{is_delete} AND {key_match_t} AND {over_row} RETURNING 1"
        ).format(
            target=ref.identifier,
            stage=sql.Identifier(stage),
            is_delete=_IS_DELETE,
            key_match_t=_key_match("t", shape.key_columns),
            over_row=supersedes(deleting, _at("t", IMAGE_RANK), repair=is_repair),
        )
        superseded = sql.SQL("EXISTS (SELECT FROM {target} t WHERE {key_match_t} AND NOT {over_row})").format(
            target=ref.identifier,
            key_match_t=_key_match("t", shape.key_columns),
            over_row=supersedes(deleting, _at("t", IMAGE_RANK), repair=is_repair),
        )
    # Every sub-statement sees the snapshot from before the DELETE, so `superseded` looks at the
    # rows as they were; a tombstone only moves forward (the same version needs no rewrite).
    return sql.SQL(
        "WITH removed AS ({removed}),"
        " marked AS (INSERT INTO {tombstones} AS d ({keys}, {version}, {deleted_at})"
        " SELECT {key_values}, s.{version}, now() FROM {stage} s WHERE s.{is_delete} AND NOT {superseded}"
        " ON CONFLICT ({keys}) DO UPDATE SET {version} = EXCLUDED.{version}, {deleted_at} = EXCLUDED.{deleted_at}"
        " WHERE d.{version} < EXCLUDED.{version} RETURNING 1)"
        " SELECT (SELECT count(*) FROM removed), (SELECT count(*) FROM marked)"
    ).format(
        removed=removed,
        superseded=superseded,
        stage=sql.Identifier(stage),
        is_delete=_IS_DELETE,
        version=_VERSION,
        tombstones=ref.tombstones,
        keys=sql.SQL(", ").join(keys),
        deleted_at=_DELETED_AT,
        key_values=sql.SQL(", ").join(_staged(c) for c in shape.key_columns),
    )


def copy_target(ref: TableRef, shape: Shape) -> sql.Composed:
    """COPY straight into the target (the fast path for keys it does not hold yet)."""
    names = [sql.Identifier(c.name) for c in shape.columns] + [_VERSION, _COMMIT_TS]
    return sql.SQL("COPY {} ({}) FROM STDIN").format(ref.identifier, sql.SQL(", ").join(names))


def any_key_known(ref: TableRef, shape: Shape) -> sql.Composed:
    """Does the target hold, or the tombstones remember, any of the keys passed as JSON?

    Parameters: the keys as one JSON array of arrays (one [value, ...] per key, in key column
    order; each value's text cast back to the column's type), given twice: for the target, then
    for its tombstones. JSON rather than a text[] per column: psycopg dumps a list element by
    element in Python, orjson dumps the whole batch's keys in one C call.
    """
    match = sql.SQL(" AND ").join(
        sql.SQL("x.{} = (k.j ->> {})::{}").format(
            sql.Identifier(c.name), sql.Literal(i), sql.SQL(normalize_type(c.pg_type))
        )
        for i, c in enumerate(shape.key_columns)
    )
    probe = sql.SQL("SELECT FROM {table} x JOIN jsonb_array_elements(%s::jsonb) AS k(j) ON {match}")
    return sql.SQL("SELECT EXISTS ({target}) OR EXISTS ({tombstones})").format(
        target=probe.format(table=ref.identifier, match=match),
        tombstones=probe.format(table=ref.tombstones, match=match),
    )


def store_offsets(
    group_id: str, next_offsets: Mapping[tuple[str, int], int]
) -> tuple[sql.Composed, tuple[object, ...]]:
    """Upsert the next offset per partition (statement, parameters)."""
    items = sorted(next_offsets.items())
    query = sql.SQL(
        "INSERT INTO {offsets} (group_id, topic, partition, next_offset, updated_at)"
        " SELECT %s, topic, partition, next_offset, now()"
        " FROM unnest(%s::text[], %s::int[], %s::bigint[]) AS o(topic, partition, next_offset)"
        " ON CONFLICT (group_id, topic, partition) DO UPDATE"
        " SET next_offset = EXCLUDED.next_offset, updated_at = EXCLUDED.updated_at"
    ).format(offsets=_OFFSETS)
    return query, (group_id, [t for (t, _), _ in items], [p for (_, p), _ in items], [o for _, o in items])


def load_offsets(group_id: str, topics: Sequence[str]) -> tuple[sql.Composed, tuple[object, ...]]:
    query = sql.SQL(
        "SELECT topic, partition, next_offset FROM {offsets} WHERE group_id = %s AND topic = ANY(%s)"
    ).format(offsets=_OFFSETS)
    return query, (group_id, list(topics))


def purge_tombstones(ref: TableRef) -> sql.Composed:
    """Forget deletes older than the retention (parameter: seconds)."""
    return sql.SQL("DELETE FROM {} WHERE {} < now() - make_interval(secs => %s)").format(ref.tombstones, _DELETED_AT)


def _at(alias: str, rank: int | sql.Composable) -> tuple[sql.Composable, sql.Composable]:
    """The position of the row `alias` (one of our fixed aliases): its version and the given rank."""
    return sql.SQL(alias + ".{}").format(_VERSION), rank if isinstance(rank, sql.Composable) else sql.Literal(rank)


def supersedes(
    new: tuple[sql.Composable, sql.Composable],
    old: tuple[sql.Composable, sql.Composable],
    *,
    repair: bool | sql.Composable,
) -> sql.Composed:
    """`changes.order.supersedes(new, old)` as a row comparison; `repair` says whether `new` is one."""
    row = sql.SQL("({}, {}) {} ({}, {})")
    strictly = row.format(*new, sql.SQL(">"), *old)
    if repair is True:
        return row.format(*new, sql.SQL(">="), *old)
    if repair is False:
        return strictly
    return sql.SQL("({} OR ({} AND {}))").format(strictly, repair, row.format(*new, sql.SQL(">="), *old))


def _staged(column: TargetColumn) -> sql.Composable:
    value = sql.SQL("s.{}").format(sql.Identifier(column.name))
    if normalize_type(column.pg_type) == "bytea":
        return sql.SQL("decode({}, 'base64')").format(value)
    return value


def _key_match(alias: str, key_columns: Sequence[TargetColumn]) -> sql.Composed:
    return sql.SQL(" AND ").join(
        sql.SQL("{}.{} = {}").format(sql.Identifier(alias), sql.Identifier(c.name), _staged(c)) for c in key_columns
    )
