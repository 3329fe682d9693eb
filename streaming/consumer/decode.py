"""Envelope v1 messages (changes/envelope.py) → staged rows, with as little Python per row as possible.

`changes.envelope.decode_event` turns every value into a Python object (Decimal, datetime, ...).
The consumer does not need that: it writes values to PostgreSQL with COPY in text format, and
the envelope's JSON values already are PostgreSQL's text input for their column type (numeric
"12.50", timestamps with a Z, "NaN"/"Infinity" for floats, JSON text for jsonb; bytea is base64
and decoded in SQL). So a message is parsed once with orjson, its structure checked, and its
values kept as they came; PostgreSQL converts them, and a value it refuses (SQLSTATE class 22)
makes the record poison (see apply.py). `tests/unit/streaming/consumer/test_decode.py` holds this decoder
to `decode_event` on the same envelopes.

A decoded message is a `Change`, a plain tuple for speed (millions per minute):
`(key, order, shape, row, message)` where `key` is the key values in the mapping's key order,
`order` is the change's position (changes/order.py) for `changes.collapse.latest_per_key`, `shape` the staged columns and `row` the staged values followed by
version, commit timestamp, is-delete and is-repair.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from changes.envelope import ENVELOPE_VERSION, REPAIR_BATCH_ID, decode_event, parse_columns
from changes.errors import EnvelopeError
from changes.order import DELETE_RANK, IMAGE_RANK, REPAIR_RANK
from changes.type_mapping import TargetColumn
from connectors.postgres_schema import BOOKKEEPING_PREFIX, MAX_IDENTIFIER_BYTES, allowed_type

KEY, ORDER, SHAPE, ROW, MESSAGE = range(5)
# Staged after the shape's values, in this order.
TRAILER = ("version", "commit_ts", "is_delete", "is_repair")

Change = tuple[Any, ...]
_loads = orjson.loads


class Message(Protocol):
    """What the decoder reads of a confluent_kafka.Message."""

    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> list[tuple[str, bytes]] | None: ...
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...


@dataclass(frozen=True, eq=False)
class Shape:
    """The columns of staged rows: key columns first (mapping order), then the others.

    Compared and hashed by identity (a decoder makes one per distinct column list), because
    batches group millions of rows by shape and hashing the columns each time would show.
    """

    columns: tuple[TargetColumn, ...]
    key_count: int

    @property
    def key_columns(self) -> tuple[TargetColumn, ...]:
        return self.columns[: self.key_count]

    @property
    def is_key_only(self) -> bool:
        return self.key_count == len(self.columns)


class TableDecoder:
    """Decodes the messages of one table's topic; caches one row getter per envelope column list."""

    def __init__(self, name: str, key_columns: Sequence[str]) -> None:
        self.name = name
        self.key_columns = tuple(key_columns)
        self._key_of = _getter(self.key_columns)
        self._key_count = len(self.key_columns)
        self._last_columns: str | None = None
        self._last_shape: tuple[Shape, Callable[[dict[str, Any]], tuple[Any, ...]]] | None = None
        self._shapes: dict[tuple[tuple[str, str], ...], tuple[Shape, Callable[[dict[str, Any]], tuple[Any, ...]]]] = {}
        # The envelope's `columns` is one string per schema: parsed once, then matched by equality.
        self._types_by_text: dict[str, dict[str, str]] = {}

    def decode(self, message: Message) -> Change:
        """One message → Change, or EnvelopeError saying why it is a poison record."""
        value = message.value()
        if value is None:
            return self._tombstone(message)
        try:
            body = _loads(value)
        except orjson.JSONDecodeError as exc:
            raise EnvelopeError(f"message value is not JSON: {exc}") from None
        try:
            envelope_version = body["v"]
            op = body["op"]
            version = body["version"]
            key_values = body["key"]
            columns = body["columns"]
            table = body["table"]
        except (KeyError, TypeError, IndexError) as exc:
            raise EnvelopeError(f"malformed envelope: missing {exc}") from None
        if envelope_version != ENVELOPE_VERSION or table != self.name or type(version) is not int:
            raise self._header_error(envelope_version, table, version)
        key = self._key(key_values)
        repair = body.get("batch_id") == REPAIR_BATCH_ID
        commit_ts = body.get("commit_ts")
        if op == "upsert":
            after = body.get("after")
            if type(after) is not dict:
                raise EnvelopeError("an upsert needs an 'after' object")
            if columns != self._last_columns:
                self._last_shape = self._shape_of(self._types(columns))
                self._last_columns = columns
            shape, row_of = self._last_shape  # type: ignore[misc]  # set just above for these columns
            values = row_of(after)
            if values[: self._key_count] != key:
                raise EnvelopeError(f"key {key_values!r} disagrees with the after-image's key columns")
            return (
                key,
                (version, REPAIR_RANK if repair else IMAGE_RANK),
                shape,
                (*values, version, commit_ts, False, repair),
                message,
            )
        if op == "delete":
            shape = self._key_shape(self._types(columns))
            return (
                key,
                (version, REPAIR_RANK if repair else DELETE_RANK),
                shape,
                (*key, version, commit_ts, True, repair),
                message,
            )
        raise EnvelopeError(f"unknown op {op!r}")

    def shapes_of(self, columns: Any) -> tuple[Shape, Shape]:
        """The full and the key-only shape of an envelope's `columns`; EnvelopeError if it is not valid."""
        types = self._types(columns)
        return self._shape_of(types)[0], self._key_shape(types)

    def _header_error(self, envelope_version: Any, table: Any, version: Any) -> EnvelopeError:
        if envelope_version != ENVELOPE_VERSION:
            return EnvelopeError(
                f"unsupported envelope version {envelope_version!r} (this consumer reads {ENVELOPE_VERSION})"
            )
        if table != self.name:
            return EnvelopeError(f"envelope of table {table!r} on the topic of table {self.name!r}")
        return EnvelopeError(f"envelope version field must be an integer, got {version!r}")

    def _key(self, key_values: Any) -> tuple[Any, ...]:
        if type(key_values) is not dict or len(key_values) != self._key_count:
            raise _key_mismatch(self.name, key_values, self.key_columns)
        try:
            key = self._key_of(key_values)
        except KeyError:
            raise _key_mismatch(self.name, key_values, self.key_columns) from None
        for value in key:
            if type(value) not in _SCALARS:
                if value is None:
                    raise EnvelopeError(f"key {key_values!r} has a null value")
                raise EnvelopeError(f"key {key_values!r} holds a {type(value).__name__} where a scalar belongs")
        return key

    def _tombstone(self, message: Message) -> Change:
        # Rare next to upserts: validate with the reference decoder, keep the key's JSON values.
        event = decode_event(message.key(), None, message.headers())
        if event.table != self.name:
            raise EnvelopeError(f"tombstone of table {event.table!r} on the topic of table {self.name!r}")
        key = self._key(orjson.loads(message.key() or b"null"))
        shape = self._key_shape(_checked_types(event.columns))
        repair = event.batch_id == REPAIR_BATCH_ID
        return (
            key,
            (event.version, REPAIR_RANK if repair else DELETE_RANK),
            shape,
            (*key, event.version, None, True, repair),
            message,
        )

    def _key_shape(self, types: dict[str, str]) -> Shape:
        try:
            ordered = tuple((k, types[k]) for k in self.key_columns)
        except KeyError as exc:
            raise EnvelopeError(f"delete without the type of key column {exc}") from None
        return self._cached(ordered)[0]

    def _types(self, columns: Any) -> dict[str, str]:
        found = self._types_by_text.get(columns) if isinstance(columns, str) else None
        if found is None:
            found = _column_types(columns)
            if len(self._types_by_text) >= _MAX_CACHED_SCHEMAS:
                self._types_by_text.clear()  # a stream of ever-new schemas must not grow memory
            self._types_by_text[columns] = found
        return found

    def _shape_of(self, types: dict[str, str]) -> tuple[Shape, Callable[[dict[str, Any]], tuple[Any, ...]]]:
        missing = [k for k in self.key_columns if k not in types]
        if missing:
            raise EnvelopeError(f"envelope columns lack key column(s) {missing}")
        ordered = [(k, types[k]) for k in self.key_columns]
        ordered += [(name, pg) for name, pg in types.items() if name not in self.key_columns]
        return self._cached(tuple(ordered))

    def _cached(
        self, ordered: tuple[tuple[str, str], ...]
    ) -> tuple[Shape, Callable[[dict[str, Any]], tuple[Any, ...]]]:
        found = self._shapes.get(ordered)
        if found is None:
            shape = Shape(tuple(TargetColumn(n, t) for n, t in ordered), len(self.key_columns))
            found = self._shapes[ordered] = (shape, _row_getter(tuple(n for n, _ in ordered)))
        return found


_MAX_CACHED_SCHEMAS = 64


def _column_types(columns: Any) -> dict[str, str]:
    try:
        parsed = parse_columns(columns)
    except ValueError as exc:
        raise EnvelopeError(f"envelope {exc}") from None
    types = _checked_types(parsed)
    if len(types) != len(parsed):
        raise EnvelopeError("envelope 'columns' repeats a column name")
    return types


def _checked_types(columns: Sequence[TargetColumn]) -> dict[str, str]:
    """name → type, each checked before it can reach any SQL (names go through sql.Identifier)."""
    types: dict[str, str] = {}
    for column in columns:
        checked = allowed_type(column.pg_type)
        if checked is None:
            raise EnvelopeError(f"column {column.name!r} has type {column.pg_type!r}, which lakesync does not know")
        types[_checked_name(column.name)] = checked
    return types


def _checked_name(name: str) -> str:
    # PostgreSQL truncates longer identifiers (then the column would not be found again) and
    # refuses empty ones; `_lakesync_` columns are the target's bookkeeping.
    if not name or len(name.encode()) > MAX_IDENTIFIER_BYTES or "\x00" in name or name.startswith(BOOKKEEPING_PREFIX):
        raise EnvelopeError(f"column name {name!r} cannot be a target column")
    return name


def _getter(names: tuple[str, ...]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """itemgetter that always returns a tuple (it returns a bare value for one name)."""
    get = operator.itemgetter(*names)
    if len(names) == 1:
        return lambda mapping: (get(mapping),)
    return get


def _row_getter(names: tuple[str, ...]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """The values of `names` from an `after` object; a column left out is null, as in decode_event."""
    fast = _getter(names)

    def row_of(after: dict[str, Any]) -> tuple[Any, ...]:
        try:
            return fast(after)
        except KeyError:
            return tuple(after.get(name) for name in names)

    return row_of


def _key_mismatch(table: str, key_values: Any, key_columns: tuple[str, ...]) -> EnvelopeError:
    got = sorted(key_values) if isinstance(key_values, dict) else key_values
    return EnvelopeError(
        f"table {table}: the envelope's key {got!r} does not have the table mapping's key_columns {list(key_columns)}"
    )


# JSON scalars as orjson returns them; a list or an object cannot be (part of) a key.
_SCALARS = frozenset({str, int, float, bool})
