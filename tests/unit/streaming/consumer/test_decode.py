"""The fast envelope decoder agrees with changes.envelope.decode_event and refuses what it refuses."""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from changes.envelope import ChangeEvent, Op, decode_event, decode_value, encode_event, tombstone_headers
from changes.errors import EnvelopeError
from changes.type_mapping import TargetColumn
from streaming.consumer.decode import KEY, ORDER, ROW, SHAPE, TableDecoder

COLUMNS = (
    TargetColumn("id", "bigint"),
    TargetColumn("name", "text"),
    TargetColumn("price", "numeric(10,2)"),
    TargetColumn("ratio", "double precision"),
    TargetColumn("day", "date"),
    TargetColumn("at", "timestamptz"),
    TargetColumn("raw", "bytea"),
    TargetColumn("tags", "jsonb"),
    TargetColumn("ok", "boolean"),
)
AFTER = {
    "id": 7,
    "name": "ação\ttab",
    "price": Decimal("12.50"),
    "ratio": float("nan"),
    "day": dt.date(2026, 1, 2),
    "at": dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
    "raw": b"\x00\xff",
    "tags": {"a": [1]},
    "ok": True,
}


@dataclass
class FakeMessage:
    k: bytes | None
    v: bytes | None
    h: list[tuple[str, bytes]]
    t: str = "lakesync.people"
    p: int = 0
    o: int = 0

    def key(self) -> bytes | None:
        return self.k

    def value(self) -> bytes | None:
        return self.v

    def headers(self) -> list[tuple[str, bytes]]:
        return self.h

    def topic(self) -> str:
        return self.t

    def partition(self) -> int:
        return self.p

    def offset(self) -> int:
        return self.o


def event(op: Op = Op.UPSERT, version: int = 3, batch_id: int = 5, after: dict[str, Any] | None = None) -> ChangeEvent:
    return ChangeEvent(
        op=op,
        table="people",
        key=(7,),
        key_names=("id",),
        version=version,
        after=(AFTER if after is None else after) if op is Op.UPSERT else None,
        columns=COLUMNS,
        commit_ts=dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
        batch_id=batch_id,
    )


def message(ev: ChangeEvent) -> FakeMessage:
    return FakeMessage(*encode_event(ev))


def test_upsert_values_are_the_json_text_postgres_reads_and_match_decode_event() -> None:
    """Each staged value, read the way PostgreSQL would for its type, equals decode_event's value."""
    msg = message(event())
    change = TableDecoder("people", ["id"]).decode(msg)
    reference = decode_event(msg.key(), msg.value(), msg.headers())
    shape = change[SHAPE]
    assert next(c.name for c in shape.columns) == "id" and shape.key_count == 1
    staged = dict(zip((c.name for c in shape.columns), change[ROW], strict=False))
    assert staged["price"] == "12.50" and staged["ratio"] == "NaN" and staged["day"] == "2026-01-02"
    assert base64.b64decode(staged["raw"]) == reference.after["raw"]  # type: ignore[index]  # the reference is an upsert: it has an after-image
    assert json.loads(staged["tags"]) == {"a": [1]}
    for column in COLUMNS:
        if column.name not in ("ratio", "raw"):
            assert decode_value(staged[column.name], column.pg_type) == reference.after[column.name]  # type: ignore[index]  # the reference is an upsert: it has an after-image
    assert change[KEY] == (7,) and change[ORDER] == (3, 1)
    assert change[ROW][-4:] == (3, "2026-01-02T00:00:00.000000Z", False, False)


def test_repair_flag_and_delete_rank() -> None:
    """batch_id -1 marks a repair; a delete ranks below an upsert of the same version."""
    decoder = TableDecoder("people", ["id"])
    repair = decoder.decode(message(event(batch_id=-1)))
    deleted = decoder.decode(message(event(op=Op.DELETE)))
    assert repair[ROW][-1] is True
    assert deleted[ORDER] == (3, 0) and deleted[ROW] == (7, 3, "2026-01-02T00:00:00.000000Z", True, False)
    assert deleted[SHAPE].is_key_only


def test_tombstone_becomes_a_keyed_delete() -> None:
    """A tombstone carries table, version and key types in headers; its key is the message key."""
    msg = FakeMessage(b'{"id":7}', None, tombstone_headers("people", 9, ["bigint"]))
    change = TableDecoder("people", ["id"]).decode(msg)
    assert change[KEY] == (7,) and change[ORDER] == (9, 0) and change[ROW] == (7, 9, None, True, False)


def test_a_repair_tombstone_stays_a_repair() -> None:
    """Compaction keeps the later of a repair delete and its tombstone: both must be repairs."""
    msg = FakeMessage(b'{"id":7}', None, tombstone_headers("people", 9, ["bigint"], repair=True))
    assert TableDecoder("people", ["id"]).decode(msg)[ROW] == (7, 9, None, True, True)


def test_shapes_are_shared_while_the_columns_stay_the_same() -> None:
    """One Shape object per distinct column list, a new one when the source adds a column."""
    decoder = TableDecoder("people", ["id"])
    first = decoder.decode(message(event()))[SHAPE]
    assert decoder.decode(message(event(version=4)))[SHAPE] is first
    wider = ChangeEvent(
        op=Op.UPSERT,
        table="people",
        key=(7,),
        key_names=("id",),
        version=5,
        after={**AFTER, "extra": "x"},
        columns=(*COLUMNS, TargetColumn("extra", "text")),
    )
    grown = decoder.decode(message(wider))[SHAPE]
    assert grown is not first and grown.columns[-1] == TargetColumn("extra", "text")


@pytest.mark.parametrize(
    "value",
    [b"{not json", b"[1,2]", b'{"v":2}', b'{"v":1,"op":"upsert"}', b"\xff\xfe"],
    ids=["not-json", "array", "future-version", "truncated", "not-utf8"],
)
def test_undecodable_messages_are_envelope_errors(value: bytes) -> None:
    """What decode_event refuses, the fast decoder refuses too, as EnvelopeError (poison)."""
    with pytest.raises(EnvelopeError):
        decode_event(b'{"id":1}', value, [])
    with pytest.raises(EnvelopeError):
        TableDecoder("people", ["id"]).decode(FakeMessage(b'{"id":1}', value, []))


def test_wrong_table_null_key_and_tombstone_without_headers_are_poison() -> None:
    decoder = TableDecoder("people", ["id"])
    other = ChangeEvent(
        op=Op.UPSERT,
        table="orders",
        key=(1,),
        key_names=("id",),
        version=1,
        after={"id": 1},
        columns=(TargetColumn("id", "bigint"),),
    )
    with pytest.raises(EnvelopeError, match="orders"):
        decoder.decode(message(other))
    null_key = message(event())
    null_key.v = null_key.v.replace(b'"key":{"id":7}', b'"key":{"id":null}')  # type: ignore[union-attr]  # an upsert message has a value
    with pytest.raises(EnvelopeError, match="null"):
        decoder.decode(null_key)
    with pytest.raises(EnvelopeError):
        decoder.decode(FakeMessage(b'{"id":7}', None, []))


def body_of(ev: ChangeEvent) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(encode_event(ev)[1])
    return body


def with_body(body: dict[str, Any]) -> FakeMessage:
    return FakeMessage(b'{"id":7}', json.dumps(body).encode(), [])


@pytest.mark.parametrize(
    ("key", "mapping"),
    [({"person_id": 7}, ["id"]), ({"id": 7, "extra": 1}, ["id"]), ({"id": 7}, ["id", "name"])],
    ids=["other-name", "more-columns", "fewer-columns"],
)
def test_a_key_with_other_columns_than_the_mapping_is_a_poison_record(key: dict[str, Any], mapping: list[str]) -> None:
    """Keyed differently from key_columns: that record is dead-lettered, the service keeps going."""
    body = body_of(event())
    body["key"] = key
    with pytest.raises(EnvelopeError, match="key"):
        TableDecoder("people", mapping).decode(with_body(body))


@pytest.mark.parametrize("value", [[7], {"n": 7}], ids=["list", "object"])
def test_a_non_scalar_key_value_is_a_poison_record(value: object) -> None:
    body = body_of(event())
    body["key"] = {"id": value}
    with pytest.raises(EnvelopeError, match="scalar"):
        TableDecoder("people", ["id"]).decode(with_body(body))


@pytest.mark.parametrize(
    "pg_type",
    ["text); DROP TABLE people; --", "money", "varchar(10)", "numeric(1001,2)", "numeric(5,6)", "int8"],
)
def test_an_unknown_type_name_in_columns_is_a_poison_record(pg_type: str) -> None:
    """Type names are checked against lakesync's vocabulary before any SQL is built."""
    columns = tuple(TargetColumn(c.name, pg_type if c.name == "name" else c.pg_type) for c in COLUMNS)
    ev = ChangeEvent(op=Op.UPSERT, table="people", key=(7,), key_names=("id",), version=3, columns=columns)
    body = body_of(ev)
    body["after"] = {"id": 7, "name": "x"}
    with pytest.raises(EnvelopeError, match="type"):
        TableDecoder("people", ["id"]).decode(with_body(body))


def test_an_unknown_key_type_in_a_tombstone_is_a_poison_record() -> None:
    msg = FakeMessage(b'{"id":7}', None, tombstone_headers("people", 9, ["bigint; DROP TABLE x"]))
    with pytest.raises(EnvelopeError, match="type"):
        TableDecoder("people", ["id"]).decode(msg)


@pytest.mark.parametrize("name", ["_lakesync_version", "x" * 64, ""], ids=["reserved", "too-long", "empty"])
def test_a_column_name_postgres_would_refuse_or_truncate_is_a_poison_record(name: str) -> None:
    columns = (*COLUMNS, TargetColumn(name, "text"))
    ev = ChangeEvent(
        op=Op.UPSERT, table="people", key=(7,), key_names=("id",), version=3, after={"id": 7}, columns=columns
    )
    with pytest.raises(EnvelopeError, match="column name"):
        TableDecoder("people", ["id"]).decode(with_body(body_of(ev)))


def test_a_key_that_disagrees_with_the_after_image_is_a_poison_record() -> None:
    """`key` says 7, the row says 8: which row would it be? Neither: dead-letter it."""
    body = body_of(event())
    body["after"]["id"] = 8
    with pytest.raises(EnvelopeError, match="after"):
        TableDecoder("people", ["id"]).decode(with_body(body))


def test_equivalent_type_spellings_share_one_checked_shape() -> None:
    """Type names are normalized when checked: the shape carries what the allow-list returned."""
    columns = (TargetColumn("id", "BIGINT"), TargetColumn("at", "timestamp with time zone"))
    ev = ChangeEvent(
        op=Op.UPSERT, table="people", key=(7,), key_names=("id",), version=1, after={"id": 7}, columns=columns
    )
    shape = TableDecoder("people", ["id"]).decode(message(ev))[SHAPE]
    assert [c.pg_type for c in shape.columns] == ["bigint", "timestamptz"]
