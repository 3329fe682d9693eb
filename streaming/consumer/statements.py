"""The SQL of one batch, built with psycopg.sql (pure: no connection needed to build it).

Per group of staged rows (one table, one shape), inside the batch's transaction:

1. `CREATE TEMP TABLE IF NOT EXISTS <stage> (...) ON COMMIT DELETE ROWS` with the shape's
   columns (bytea staged as base64 text, decoded in SQL) and the trailer: version, commit
   timestamp, is-delete, is-repair — one stage per shape and connection, emptied (`TRUNCATE`)
   before each part, so isolating many poison records in one transaction holds a bounded number
   of locks instead of one table's per part;
2. `COPY <stage> FROM STDIN (FORMAT csv)`;
3. one set-based upsert per kind of event present (stream, repair):
   `INSERT ... SELECT ... WHERE the change supersedes the key's tombstone ON CONFLICT (key) DO
   UPDATE ... WHERE the change supersedes the target row`;
4. one set-based delete that also records the tombstones (same guard).

Every guard is the order of changes/order.py rendered as a row comparison: a change at
`(version, rank)` supersedes a target row at `(_lakesync_version, IMAGE_RANK)` or a tombstone at
`(_lakesync_version, DELETE_RANK)` when its position is greater (a repair's: greater or equal).
So an upsert of commit V replaces a tombstone of the same commit V (the commit's final state of
the key is its image), and a delete of commit V leaves a row of commit V alone. A target's floor
(`lakesync.target_floors`, written by a rebuild at V) is a repair of every key at V: a change
applies only if it supersedes that position too.

Around them, the partition's row of lakesync.consumer_offsets: locked first (`lock_offset`, which
fences writers that lost the partition), advanced last (`advance_offset`); `claim_partitions`
makes a consumer the partition's writer when it is assigned.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from psycopg import sql

from changes.order import DELETE_RANK, IMAGE_RANK, REPAIR_RANK
from changes.type_mapping import TargetColumn
from connectors.postgres_order import SqlPosition, position_of, supersedes
from connectors.postgres_schema import (
    BOOKKEEPING_SCHEMA,
    COMMIT_TS_COLUMN,
    DELETED_AT_COLUMN,
    FLOORS,
    OFFSETS_TABLE,
    VERSION_COLUMN,
    TableRef,
    allowed_type,
    normalize_type,
)
from streaming.consumer.decode import Shape

_VERSION = sql.Identifier(VERSION_COLUMN)
_COMMIT_TS = sql.Identifier(COMMIT_TS_COLUMN)
_DELETED_AT = sql.Identifier(DELETED_AT_COLUMN)
_IS_DELETE = sql.Identifier("_lakesync_delete")
_IS_REPAIR = sql.Identifier("_lakesync_repair")
_OFFSETS = sql.Identifier(BOOKKEEPING_SCHEMA, OFFSETS_TABLE)


def sql_type(pg_type: str) -> sql.SQL:
    """A type name as SQL, only from lakesync's vocabulary (decode.py refuses others first)."""
    checked = allowed_type(pg_type)
    if checked is None:
        raise ValueError(f"type {pg_type!r} is outside lakesync's vocabulary")
    return sql.SQL(checked)


def staging_type(pg_type: str) -> sql.SQL:
    """The column type rows are staged as: the target's, except bytea (base64 text in envelopes)."""
    return sql.SQL("text") if normalize_type(pg_type) == "bytea" else sql_type(pg_type)


def stage_name(shape: Shape) -> str:
    """The staging table of a shape: the same name for the same columns, on every connection."""
    described = ";".join(f"{c.name}:{normalize_type(c.pg_type)}" for c in shape.columns)
    return "lakesync_stage_" + hashlib.sha256(described.encode()).hexdigest()[:16]


def empty_stage(stage: str) -> sql.Composed:
    return sql.SQL("TRUNCATE {}").format(sql.Identifier(stage))


def create_stage(stage: str, shape: Shape) -> sql.Composed:
    columns = [sql.SQL("{} {}").format(sql.Identifier(c.name), staging_type(c.pg_type)) for c in shape.columns]
    columns += [
        sql.SQL("{} bigint").format(_VERSION),
        sql.SQL("{} timestamptz").format(_COMMIT_TS),
        sql.SQL("{} boolean").format(_IS_DELETE),
        sql.SQL("{} boolean").format(_IS_REPAIR),
    ]
    return sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} ({}) ON COMMIT DELETE ROWS").format(
        sql.Identifier(stage), sql.SQL(", ").join(columns)
    )


def copy_stage(stage: str) -> sql.Composed:
    return sql.SQL("COPY {} FROM STDIN (FORMAT csv)").format(sql.Identifier(stage))


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
        " AND {over_floor}"
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
        over_floor=_over_floor(ref, _at("s", change_rank), repair=repair),
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
    removed: sql.Composable = sql.SQL("SELECT 1 WHERE false")
    # A delete superseded by the live row (an image of its own commit or later) leaves no tombstone.
    superseded: sql.Composable = sql.SQL("false")
    if target_exists:
        removed = sql.SQL(
            "DELETE FROM {target} t USING {stage} s WHERE s.{is_delete} AND {key_match_t} AND {over_row}"
            " AND {over_floor} RETURNING 1"
        ).format(
            target=ref.identifier,
            stage=sql.Identifier(stage),
            is_delete=_IS_DELETE,
            key_match_t=_key_match("t", shape.key_columns),
            over_row=supersedes(deleting, _at("t", IMAGE_RANK), repair=is_repair),
            over_floor=_over_floor(ref, deleting, repair=is_repair),
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
        " AND {over_floor}"
        " ON CONFLICT ({keys}) DO UPDATE SET {version} = EXCLUDED.{version}, {deleted_at} = EXCLUDED.{deleted_at}"
        " WHERE d.{version} < EXCLUDED.{version} RETURNING 1)"
        " SELECT (SELECT count(*) FROM removed), (SELECT count(*) FROM marked)"
    ).format(
        removed=removed,
        superseded=superseded,
        over_floor=_over_floor(ref, deleting, repair=is_repair),
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
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(ref.identifier, sql.SQL(", ").join(names))


def any_key_known(ref: TableRef, shape: Shape) -> sql.Composed:
    """Does the target hold, or the tombstones remember, any of the keys passed as JSON, or does
    its floor reach the part's oldest version (then the guarded merge must decide)?

    Parameters: the keys as one JSON array of arrays (one [value, ...] per key, in key column
    order; each value's text cast back to the column's type), given twice: for the target, then
    for its tombstones; then the part's oldest version. JSON rather than a text[] per column:
    psycopg dumps a list element by element in Python, orjson dumps the whole batch's keys in one
    C call.
    """
    match = sql.SQL(" AND ").join(
        sql.SQL("x.{} = (k.j ->> {})::{}").format(sql.Identifier(c.name), sql.Literal(i), sql_type(c.pg_type))
        for i, c in enumerate(shape.key_columns)
    )
    probe = sql.SQL("SELECT FROM {table} x JOIN jsonb_array_elements(%s::jsonb) AS k(j) ON {match}")
    return sql.SQL(
        "SELECT EXISTS ({target}) OR EXISTS ({tombstones})"
        " OR EXISTS (SELECT FROM {floors} f WHERE f.target = {floor_key} AND f.version >= %s)"
    ).format(
        target=probe.format(table=ref.identifier, match=match),
        tombstones=probe.format(table=ref.tombstones, match=match),
        floors=FLOORS,
        floor_key=sql.Literal(ref.floor_key),
    )


def claim_partitions(
    group_id: str, topic: str, partitions: Sequence[int], owner: str
) -> tuple[sql.Composed, tuple[object, ...]]:
    """Make `owner` the writer of these partitions; returns (partition, next_offset) per partition.

    A partition never consumed gets its row now, at offset 0 (Kafka's reset policy, earliest,
    takes a seek to 0 to the log start). The update waits for a batch of the previous owner
    that holds the row's lock, so the offset returned is the one that batch left.
    """
    query = sql.SQL(
        "INSERT INTO {offsets} AS o (group_id, topic, partition, next_offset, owner, updated_at)"
        " SELECT %s, %s, p, 0, %s, now() FROM unnest(%s::int[]) AS p"
        " ON CONFLICT (group_id, topic, partition) DO UPDATE SET owner = EXCLUDED.owner, updated_at = now()"
        " RETURNING o.partition, o.next_offset"
    ).format(offsets=_OFFSETS)
    return query, (group_id, topic, owner, sorted(partitions))


def lock_offset(group_id: str, tp: tuple[str, int]) -> tuple[sql.Composed, tuple[object, ...]]:
    """Lock a partition's offsets row for the batch's transaction; returns (next_offset, owner)."""
    query = sql.SQL(
        "SELECT next_offset, owner FROM {offsets} WHERE group_id = %s AND topic = %s AND partition = %s FOR UPDATE"
    ).format(offsets=_OFFSETS)
    return query, (group_id, *tp)


def advance_offset(group_id: str, tp: tuple[str, int], next_offset: int) -> tuple[sql.Composed, tuple[object, ...]]:
    """Store where the partition resumes (the row is locked by lock_offset in the same transaction)."""
    query = sql.SQL(
        "UPDATE {offsets} SET next_offset = %s, updated_at = now() WHERE group_id = %s AND topic = %s AND partition = %s"
    ).format(offsets=_OFFSETS)
    return query, (next_offset, group_id, *tp)


def purge_tombstones(ref: TableRef) -> sql.Composed:
    """Forget deletes older than the retention (parameter: seconds)."""
    return sql.SQL("DELETE FROM {} WHERE {} < now() - make_interval(secs => %s)").format(ref.tombstones, _DELETED_AT)


def _over_floor(ref: TableRef, change: SqlPosition, *, repair: bool | sql.Composable) -> sql.Composed:
    """The change supersedes the target's floor, if it has one (see TableRef.floor_key)."""
    floor = (sql.SQL("f.version"), sql.Literal(REPAIR_RANK))
    return sql.SQL("NOT EXISTS (SELECT FROM {} f WHERE f.target = {} AND NOT {})").format(
        FLOORS, sql.Literal(ref.floor_key), supersedes(change, floor, repair=repair)
    )


def _at(alias: str, rank: int | sql.Composable) -> SqlPosition:
    return position_of(alias, VERSION_COLUMN, rank)


def _staged(column: TargetColumn) -> sql.Composable:
    value = sql.SQL("s.{}").format(sql.Identifier(column.name))
    if normalize_type(column.pg_type) == "bytea":
        return sql.SQL("decode({}, 'base64')").format(value)
    return value


def _key_match(alias: str, key_columns: Sequence[TargetColumn]) -> sql.Composed:
    return sql.SQL(" AND ").join(
        sql.SQL("{}.{} = {}").format(sql.Identifier(alias), sql.Identifier(c.name), _staged(c)) for c in key_columns
    )
