"""The fast envelope decoder agrees with changes.envelope.decode_event and refuses what it refuses."""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal

import pytest

from changes.envelope import ChangeEvent, EnvelopeError, Op, decode_event, decode_value, encode_event, tombstone_headers
from changes.type_mapping import TargetColumn
from connectors.postgres_schema import SchemaMismatchError
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


def event(op: Op = Op.UPSERT, version: int = 3, batch_id: int = 5, after: dict | None = None) -> ChangeEvent:
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
    assert base64.b64decode(staged["raw"]) == reference.after["raw"]  # type: ignore[index]
    assert json.loads(staged["tags"]) == {"a": [1]}
    for column in COLUMNS:
        if column.name not in ("ratio", "raw"):
            assert decode_value(staged[column.name], column.pg_type) == reference.after[column.name]  # type: ignore[index]
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
    null_key.v = null_key.v.replace(b'"key":{"id":7}', b'"key":{"id":null}')  # type: ignore[union-attr]
    with pytest.raises(EnvelopeError, match="null"):
        decoder.decode(null_key)
    with pytest.raises(EnvelopeError):
        decoder.decode(FakeMessage(b'{"id":7}', None, []))


def test_a_key_that_does_not_match_the_mapping_is_a_schema_problem() -> None:
    """Envelopes keyed differently from key_columns stop the service (not a poison record)."""
    with pytest.raises(SchemaMismatchError, match="rebuild --table people"):
        TableDecoder("people", ["person_id"]).decode(message(event()))
