"""The Kafka envelope of one change, version 1: what the streaming job publishes per changed key.

Message key: the canonical primary-key encoding, compact JSON of the key columns in configured
order with values encoded as below, e.g. `{"id":42}` or `{"l_orderkey":7,"l_linenumber":2}`.
All events of one key share it, so they land on one partition, in order.

Message value (UTF-8 JSON object):

    {"v": 1,                         envelope version; consumers refuse versions they don't know
     "op": "upsert" | "delete",
     "table": "people",              the table mapping's name
     "source": "/lake/people",       the Delta table (path or name)
     "version": 12,                  Delta commit version of this image (the version guard)
     "commit_ts": "2026-11-22T10:00:00.000000Z",   Delta commit timestamp (UTC)
     "batch_id": 5,                  streaming micro-batch id (-1 for reconcile repairs)
     "hash": -4120..,                canonical row hash of `after` (null for deletes)
     "key": {"id": 42},
     "after": {"id": 42, ...},       the full target-mapped row; null for deletes
     "columns": "[[\"id\",\"bigint\"],[\"name\",\"text\"],...]"}
                                     target columns and PostgreSQL types: a JSON list of
                                     [name, type] pairs, carried as one string

`columns` is a string on purpose: every message of a table carries the same one, so a consumer
parses it once and recognises it afterwards by plain string equality, instead of decoding some
thirty small objects per message (the biggest single cost of decoding an envelope).

A delete is followed by a tombstone: same key, null value, headers `lakesync-op: delete`,
`lakesync-table`, `lakesync-version` and `lakesync-key-types` (JSON list of the key columns'
PostgreSQL types), plus `lakesync-repair: 1` when the delete is a reconcile repair, so
compaction forgets the key while a consumer that only sees the tombstone can still apply the
same version-guarded delete. Every message carries the headers
`lakesync-envelope: 1` and `lakesync-table`.

Values in `key` and `after`, by PostgreSQL type (exact, nothing goes through a float that
was not a float):

| type                    | JSON                                                           |
|-------------------------|----------------------------------------------------------------|
| boolean                 | true / false                                                   |
| smallint, integer, bigint | number                                                       |
| real, double precision  | number, or the strings "NaN", "Infinity", "-Infinity"          |
| numeric(p,s)            | string, plain decimal at scale s ("12.50")                     |
| text                    | string                                                         |
| bytea                   | string, standard base64                                        |
| date                    | string "YYYY-MM-DD"                                            |
| timestamptz             | string "YYYY-MM-DDTHH:MM:SS.ffffffZ" (UTC)                     |
| timestamp               | string "YYYY-MM-DDTHH:MM:SS.ffffff"                            |
| jsonb                   | string holding the JSON text of the nested value               |
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from changes.errors import EnvelopeError
from changes.type_mapping import TargetColumn

ENVELOPE_VERSION = 1
HEADER_ENVELOPE = "lakesync-envelope"
HEADER_OP = "lakesync-op"
HEADER_TABLE = "lakesync-table"
HEADER_VERSION = "lakesync-version"
HEADER_KEY_TYPES = "lakesync-key-types"
HEADER_REPAIR = "lakesync-repair"
REPAIR_BATCH_ID = -1

# Options under which Spark's to_json writes the value formats above (streaming/publisher).
SPARK_JSON_OPTIONS = {
    "ignoreNullFields": "false",
    "timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX",
    "timestampNTZFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSS",
    "dateFormat": "yyyy-MM-dd",
}

_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_INTEGERS = frozenset({"smallint", "integer", "bigint"})
_FLOATS = frozenset({"real", "double precision"})


class Op(StrEnum):
    UPSERT = "upsert"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One decoded change of one key. `after` holds Python values (see `decode_value`)."""

    op: Op
    table: str
    key: tuple[Any, ...]
    version: int
    after: dict[str, Any] | None = None
    columns: tuple[TargetColumn, ...] = ()
    key_names: tuple[str, ...] = ()
    commit_ts: dt.datetime | None = None
    row_hash: int | None = None
    batch_id: int | None = None
    source: str | None = None
    is_tombstone: bool = False


# --- encoding (Python side: tests, tools; the Spark job builds the same JSON natively) -------


def encode_event(event: ChangeEvent) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(message key, message value, headers) for a full envelope."""
    types = {c.name: c.pg_type for c in event.columns}
    key = {name: encode_value(value, types[name]) for name, value in zip(event.key_names, event.key, strict=True)}
    body = {
        "v": ENVELOPE_VERSION,
        "op": str(event.op),
        "table": event.table,
        "source": event.source,
        "version": event.version,
        "commit_ts": _format_instant(event.commit_ts) if event.commit_ts else None,
        "batch_id": event.batch_id,
        "hash": event.row_hash,
        "key": key,
        "after": None
        if event.after is None
        else {c.name: encode_value(event.after.get(c.name), c.pg_type) for c in event.columns},
        "columns": columns_text(event.columns),
    }
    return _compact(key), _compact(body), _headers(event)


def columns_text(columns: Sequence[TargetColumn]) -> str:
    """The envelope's `columns` string: compact JSON of [name, type] pairs."""
    return _compact([[c.name, c.pg_type] for c in columns]).decode()


def parse_columns(text: Any) -> tuple[TargetColumn, ...]:
    """The target columns of an envelope's `columns` string; ValueError if it is not one."""
    if not isinstance(text, str):
        raise ValueError("'columns' must be a string holding a JSON list of [name, type] pairs")
    pairs = json.loads(text)
    if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
        raise ValueError("'columns' must hold a JSON list of [name, type] pairs")
    return tuple(TargetColumn(str(name), str(pg_type)) for name, pg_type in pairs)


def tombstone_headers(
    table: str, version: int, key_types: Sequence[str], *, repair: bool = False
) -> list[tuple[str, bytes]]:
    headers = [
        (HEADER_ENVELOPE, str(ENVELOPE_VERSION).encode()),
        (HEADER_TABLE, table.encode()),
        (HEADER_OP, b"delete"),
        (HEADER_VERSION, str(version).encode()),
        (HEADER_KEY_TYPES, _compact(list(key_types))),
    ]
    return [*headers, (HEADER_REPAIR, b"1")] if repair else headers


def encode_value(value: Any, pg_type: str) -> Any:
    """The JSON value of one Python value for a column of `pg_type` (table in module docstring)."""
    if value is None:
        return None
    if pg_type in _FLOATS:
        number = float(value)
        if math.isnan(number):
            return "NaN"
        return number if math.isfinite(number) else ("Infinity" if number > 0 else "-Infinity")
    if pg_type.startswith("numeric"):
        return format(Decimal(value), "f")
    if pg_type == "bytea":
        return base64.b64encode(bytes(value)).decode()
    if pg_type == "date":
        return value.isoformat()
    if pg_type == "timestamptz":
        return _format_instant(value)
    if pg_type == "timestamp":
        return value.replace(tzinfo=None).isoformat(timespec="microseconds")
    if pg_type == "jsonb":
        return value if isinstance(value, str) else _compact(value).decode()
    return value


# --- decoding (the consumer) -------------------------------------------------------------------


def decode_event(key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]] | None) -> ChangeEvent:
    """Decode one Kafka message into a ChangeEvent, or raise EnvelopeError saying what is wrong."""
    if value is None:
        return _decode_tombstone(key, dict(headers or ()))
    try:
        body = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EnvelopeError(f"message value is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise EnvelopeError("message value is not a JSON object")
    if body.get("v") != ENVELOPE_VERSION:
        raise EnvelopeError(f"unsupported envelope version {body.get('v')!r} (this consumer reads {ENVELOPE_VERSION})")
    return _decode_body(body)


def decode_value(value: Any, pg_type: str) -> Any:
    """The Python value of one JSON value for a column of `pg_type`; ValueError if it does not fit."""
    if value is None:
        return None
    if pg_type in _INTEGERS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {value!r}")
        return value
    if pg_type in _FLOATS:
        if isinstance(value, str):
            return _SPECIAL_FLOATS[value]
        return float(value)
    if pg_type.startswith("numeric"):
        return _decimal(value)
    if pg_type == "bytea":
        return base64.b64decode(value, validate=True)
    if pg_type == "date":
        return dt.date.fromisoformat(value)
    if pg_type in ("timestamptz", "timestamp"):
        return dt.datetime.fromisoformat(value)
    if pg_type == "boolean" and not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _decode_body(body: dict[str, Any]) -> ChangeEvent:
    try:
        op = Op(body["op"])
        columns = parse_columns(body["columns"])
        types = {c.name: c.pg_type for c in columns}
        raw_key = body["key"]
        key_names = tuple(raw_key)
        after = body["after"]
        if op is Op.UPSERT and not isinstance(after, dict):
            raise EnvelopeError("an upsert needs an 'after' object")
        return ChangeEvent(
            op=op,
            table=str(body["table"]),
            key=tuple(decode_value(raw_key[name], types[name]) for name in key_names),
            key_names=key_names,
            version=int(body["version"]),
            after=None if after is None else {c.name: decode_value(after.get(c.name), c.pg_type) for c in columns},
            columns=columns,
            commit_ts=dt.datetime.fromisoformat(body["commit_ts"]) if body.get("commit_ts") else None,
            row_hash=body.get("hash"),
            batch_id=body.get("batch_id"),
            source=body.get("source"),
        )
    except EnvelopeError:
        raise
    except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
        raise EnvelopeError(f"malformed envelope: {type(exc).__name__}: {exc}") from None


def _decode_tombstone(key: bytes | None, headers: dict[str, bytes]) -> ChangeEvent:
    if key is None:
        raise EnvelopeError("tombstone without a key")
    try:
        table = headers[HEADER_TABLE].decode()
        version = int(headers[HEADER_VERSION])
        key_types = json.loads(headers[HEADER_KEY_TYPES])
        raw_key = json.loads(key)
        key_names = tuple(raw_key)
        values = tuple(decode_value(raw_key[n], t) for n, t in zip(key_names, key_types, strict=True))
    except (KeyError, TypeError, ValueError, UnicodeDecodeError, InvalidOperation) as exc:
        raise EnvelopeError(f"tombstone without lakesync headers or a JSON key: {exc}") from None
    return ChangeEvent(
        op=Op.DELETE,
        table=table,
        key=values,
        key_names=key_names,
        version=version,
        columns=tuple(TargetColumn(n, t) for n, t in zip(key_names, key_types, strict=True)),
        is_tombstone=True,
        batch_id=REPAIR_BATCH_ID if headers.get(HEADER_REPAIR) == b"1" else None,
    )


def _decimal(value: Any) -> Decimal:
    if not isinstance(value, str):
        raise ValueError(f"expected a decimal string, got {value!r}")
    number = Decimal(value)
    if not number.is_finite():
        raise ValueError(f"numeric value {value!r} is not finite")
    return number


def _format_instant(value: dt.datetime) -> str:
    """UTC with six fraction digits and a Z; a naive value is taken to be UTC already."""
    instant = value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value
    return instant.isoformat(timespec="microseconds") + "Z"


def _headers(event: ChangeEvent) -> list[tuple[str, bytes]]:
    return [(HEADER_ENVELOPE, str(ENVELOPE_VERSION).encode()), (HEADER_TABLE, event.table.encode())]


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
