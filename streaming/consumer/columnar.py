"""Decode a partition's envelopes in one pass into Arrow columns, when the batch is regular.

The message-by-message decoder (decode.py) costs several microseconds of Python per record. Most
batches are regular — every envelope of one schema (one `columns` string), well-formed — and for
those Arrow's JSON reader parses all the values at once, in C++, straight into typed columns, and
the checks run as vector operations:

    values ──join with "\\n"──▶ pyarrow.json (explicit schema, unknown fields refused)
      ──▶ envelope version, table, op, version, columns string, key present and equal to the
          after-image's key columns: each checked for the whole batch at once
      ──▶ compaction: keys grouped in Arrow; only keys seen more than once go through
          changes.collapse.latest_per_key, with the positions of changes/order.py
      ──▶ staged groups: the upserts (the shape's columns taken from `after`) and the deletes

`decode` returns None whenever anything is irregular (a second schema, a value of another JSON
kind than its column's, a field the schema does not know, a line that is not exactly one
envelope, a failed check): the caller then decodes message by message, which finds each
malformed record and dead-letters it. Tombstones (no value) are decoded one by one here too.
"""

from __future__ import annotations

import io
import operator
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from changes.collapse import latest_per_key
from changes.envelope import ENVELOPE_VERSION, REPAIR_BATCH_ID
from changes.errors import EnvelopeError
from changes.order import DELETE_RANK, IMAGE_RANK, REPAIR_RANK
from streaming.consumer.decode import KEY, ORDER, ROW, Change, Message, Shape, TableDecoder

TRAILER = ("_lakesync_version", "_lakesync_commit_ts", "_lakesync_delete", "_lakesync_repair")
MESSAGE_INDEX = "_lakesync_message"
VERSION, COMMIT_TS, IS_DELETE, IS_REPAIR = TRAILER

_INTEGER_TYPES = frozenset({"smallint", "integer", "bigint"})
_FLOAT_TYPES = frozenset({"real", "double precision"})
# One block holds a whole batch: the reader then makes one chunk per column.
_READ = pa_json.ReadOptions(use_threads=False, block_size=1 << 25)
_ROW_ID = "_lakesync_row"
_RANK = "_lakesync_rank"


@dataclass
class Decoded:
    """A regular batch: its staged groups, tombstones refused, and how many changes survived."""

    groups: list[tuple[Shape, pa.Table]]
    rejected: list[tuple[int, EnvelopeError]]
    kept: int


def decode(messages: Sequence[Message], values: Sequence[bytes | None], decoder: TableDecoder) -> Decoded | None:
    """Staged groups of a regular batch of one partition, or None (decode message by message)."""
    envelopes = [i for i, value in enumerate(values) if value is not None]
    if not envelopes:
        return None
    lines = values if len(envelopes) == len(values) else [values[i] for i in envelopes]
    shapes = _shapes(lines[0], decoder)  # type: ignore[arg-type]  # `lines` holds no None (filtered above)
    if shapes is None:
        return None
    table = _parse(lines, _schema(*shapes))  # type: ignore[arg-type]  # as above
    if table is None or not _valid(table, decoder, shapes[0]):
        return None
    changes = _changes(table, shapes[1], pa.array(envelopes, pa.int64()))
    tombstones = [i for i, value in enumerate(values) if value is None]
    rejected: list[tuple[int, EnvelopeError]] = []
    if tombstones:
        extra = _tombstones([messages[i] for i in tombstones], tombstones, decoder, changes.schema, rejected)
        if extra is None:
            return None
        changes = pa.concat_tables([changes, extra])
    survivors = changes.take(winners(changes, len(shapes[1].columns)))
    return Decoded(_groups(survivors, shapes), rejected, survivors.num_rows)


def _shapes(first: bytes, decoder: TableDecoder) -> tuple[Shape, Shape] | None:
    """The full and key-only shapes of the batch's first envelope (its schema)."""
    try:
        columns = orjson.loads(first)["columns"]
        return decoder.shapes_of(columns)
    except (orjson.JSONDecodeError, EnvelopeError, KeyError, TypeError):
        return None


def _arrow_type(pg_type: str) -> pa.DataType:
    # Everything else travels as a JSON string that is PostgreSQL's text input already.
    if pg_type in _INTEGER_TYPES:
        return pa.int64()
    if pg_type in _FLOAT_TYPES:
        return pa.float64()  # "NaN" / "Infinity" strings make the batch irregular
    if pg_type == "boolean":
        return pa.bool_()
    return pa.string()


def _struct(shape: Shape) -> pa.StructType:
    return pa.struct([pa.field(c.name, _arrow_type(c.pg_type)) for c in shape.columns])


def _schema(shape: Shape, key_shape: Shape) -> pa.Schema:
    """Every envelope field (changes/envelope.py), typed; any other field makes the batch irregular."""
    return pa.schema(
        [
            ("v", pa.int64()),
            ("op", pa.string()),
            ("table", pa.string()),
            ("source", pa.string()),
            ("version", pa.int64()),
            ("commit_ts", pa.string()),
            ("batch_id", pa.int64()),
            ("hash", pa.int64()),
            ("key", _struct(key_shape)),
            ("after", _struct(shape)),
            ("columns", pa.string()),
        ]
    )


def _parse(lines: Sequence[bytes], schema: pa.Schema) -> pa.Table | None:
    """One row per message, or None.

    Every message must start with `{` and end with `}`: then each one yields at least one row (or
    a parse error), so as many rows as messages means exactly one each, in order — without
    scanning the bytes for newlines.
    """
    if not all(line[:1] == b"{" and line[-1:] == b"}" for line in lines):
        return None
    joined = b"\n".join(lines)
    options = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error")
    try:
        table = pa_json.read_json(io.BytesIO(joined), read_options=_READ, parse_options=options)
    except (pa.ArrowException, UnicodeDecodeError):
        return None
    return table if table.num_rows == len(lines) else None


def _valid(table: pa.Table, decoder: TableDecoder, shape: Shape) -> bool:
    """The checks decode.py makes per message, made on whole columns."""
    upserts = pc.equal(table["op"], "upsert")
    after, key = table["after"], table["key"]
    checks = [
        pc.equal(table["v"], ENVELOPE_VERSION),
        pc.equal(table["table"], decoder.name),
        pc.or_kleene(upserts, pc.equal(table["op"], "delete")),
        pc.is_valid(table["version"]),
        pc.equal(table["columns"], table["columns"][0]),
        pc.is_valid(key),
        pc.or_kleene(pc.invert(upserts), pc.is_valid(after)),
    ]
    for column in shape.key_columns:
        own = pc.struct_field(key, column.name)
        checks.append(pc.is_valid(own))
        checks.append(pc.or_kleene(pc.invert(upserts), pc.equal(pc.struct_field(after, column.name), own)))
    return all(pc.all(pc.fill_null(check, False)).as_py() for check in checks)


def _changes(table: pa.Table, key_shape: Shape, messages: pa.Array) -> pa.Table:
    """One row per envelope: its key columns, position, trailer, message index and after-image."""
    deletes = pc.equal(table["op"], "delete")
    repairs = pc.fill_null(pc.equal(table["batch_id"], REPAIR_BATCH_ID), False)
    ranks = pc.if_else(repairs, REPAIR_RANK, pc.if_else(deletes, DELETE_RANK, IMAGE_RANK))
    keys = [pc.struct_field(table["key"], c.name) for c in key_shape.columns]
    trailer = [table["version"], pc.cast(ranks, pa.int8()), table["commit_ts"], deletes, repairs, messages]
    return pa.Table.from_arrays(
        [*keys, *trailer, table["after"]],
        names=[*_key_names(key_shape), VERSION, _RANK, COMMIT_TS, IS_DELETE, IS_REPAIR, MESSAGE_INDEX, "after"],
    )


def _key_names(key_shape: Shape) -> list[str]:
    return [f"_lakesync_key_{i}" for i in range(len(key_shape.columns))]


def _tombstones(
    messages: Sequence[Message],
    indices: Sequence[int],
    decoder: TableDecoder,
    schema: pa.Schema,
    rejected: list[tuple[int, EnvelopeError]],
) -> pa.Table | None:
    """Tombstones decoded one by one (they are few), as rows like the envelopes' deletes."""
    rows: list[tuple[Change, int]] = []
    for message, index in zip(messages, indices, strict=True):
        try:
            rows.append((decoder.decode(message), index))
        except EnvelopeError as exc:
            rejected.append((index, exc))
    key_count = schema.get_field_index(VERSION)
    try:
        arrays = [pa.array([c[KEY][i] for c, _ in rows], schema.field(i).type) for i in range(key_count)]
    except (pa.ArrowException, OverflowError, TypeError):
        return None  # keyed with other types than the envelopes: decode.py sorts it out
    arrays += [
        pa.array([c[ORDER][0] for c, _ in rows], pa.int64()),
        pa.array([c[ORDER][1] for c, _ in rows], pa.int8()),
        pa.nulls(len(rows), pa.string()),
        pa.array([True] * len(rows)),
        pa.array([c[ROW][-1] for c, _ in rows], pa.bool_()),
        pa.array([i for _, i in rows], pa.int64()),
        pa.nulls(len(rows), schema.field("after").type),
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def winners(changes: pa.Table, key_count: int) -> pa.Array:
    """Row numbers of the change that wins per key (changes/order.py), in message order.

    Keys are grouped in Arrow; a key with one change keeps it. Only the changes of keys seen
    more than once go through `latest_per_key`, in message order, so a full tie goes to the
    later offset.
    """
    numbered = changes.append_column(_ROW_ID, pa.array(range(changes.num_rows), pa.int64()))
    keys = numbered.column_names[:key_count]
    lists = numbered.group_by(keys, use_threads=False).aggregate([(_ROW_ID, "list")])[f"{_ROW_ID}_list"]
    lengths = pc.list_value_length(lists)
    if pc.max(lengths).as_py() == 1:
        return numbered[_ROW_ID]
    repeated = pc.filter(lists, pc.greater(lengths, 1))
    chosen = pc.list_flatten(pc.filter(lists, pc.equal(lengths, 1))).to_pylist()
    chosen += _latest_of_repeated(changes, repeated)
    picked = pa.array(chosen, pa.int64())
    return pc.take(picked, pc.sort_indices(pc.take(changes[MESSAGE_INDEX], picked)))


def _latest_of_repeated(changes: pa.Table, repeated: pa.ChunkedArray) -> list[int]:
    """The winning row of each list of rows sharing a key."""
    rows = pc.list_flatten(repeated)
    taken = changes.take(rows)
    candidates = sorted(
        zip(
            taken[MESSAGE_INDEX].to_pylist(),
            taken[VERSION].to_pylist(),
            taken[_RANK].to_pylist(),
            pc.list_parent_indices(repeated).to_pylist(),
            rows.to_pylist(),
            strict=True,
        )
    )
    won = latest_per_key(candidates, key=operator.itemgetter(3), order=operator.itemgetter(1, 2))
    return [candidate[4] for candidate in won]


def _groups(survivors: pa.Table, shapes: tuple[Shape, Shape]) -> list[tuple[Shape, pa.Table]]:
    """The upserts staged with the full shape, the deletes with the key-only one."""
    shape, key_shape = shapes
    deletes = survivors[IS_DELETE]
    groups = []
    upserts = survivors.filter(pc.invert(deletes))
    if upserts.num_rows:
        after = upserts["after"]
        values = [pc.struct_field(after, c.name) for c in shape.columns]
        groups.append((shape, _staged(values, upserts, shape)))
    removed = survivors.filter(deletes)
    if removed.num_rows:
        values = [removed[name] for name in _key_names(key_shape)]
        groups.append((key_shape, _staged(values, removed, key_shape)))
    return groups


def _staged(values: list[pa.ChunkedArray], rows: pa.Table, shape: Shape) -> pa.Table:
    trailer = [rows[name] for name in (*TRAILER, MESSAGE_INDEX)]
    return pa.Table.from_arrays([*values, *trailer], names=[c.name for c in shape.columns] + [*TRAILER, MESSAGE_INDEX])
