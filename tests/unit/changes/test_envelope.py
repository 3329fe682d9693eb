"""Envelopes round-trip exactly and bad messages are named, not guessed at."""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal

import pytest

from changes.envelope import ChangeEvent, Op, decode_event, decode_value, encode_event, encode_value, tombstone_headers
from changes.errors import EnvelopeError
from changes.type_mapping import TargetColumn

COLUMNS = (
    TargetColumn("id", "bigint"),
    TargetColumn("price", "numeric(12,2)"),
    TargetColumn("ratio", "double precision"),
    TargetColumn("photo", "bytea"),
    TargetColumn("born", "date"),
    TargetColumn("seen", "timestamptz"),
    TargetColumn("local", "timestamp"),
    TargetColumn("tags", "jsonb"),
    TargetColumn("name", "text"),
    TargetColumn("active", "boolean"),
)
AFTER = {
    "id": 7,
    "price": Decimal("12.50"),
    "ratio": math.inf,
    "photo": b"\x00\x01",
    "born": dt.date(1990, 5, 17),
    "seen": dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
    "local": dt.datetime(2026, 1, 2, 3, 4, 5),
    "tags": '{"a":[1,2]}',
    "name": "José \u2603",
    "active": True,
}


def event(**changes: object) -> ChangeEvent:
    base = {
        "op": Op.UPSERT,
        "table": "people",
        "key": (7,),
        "key_names": ("id",),
        "version": 3,
        "after": AFTER,
        "columns": COLUMNS,
        "commit_ts": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        "row_hash": -42,
        "batch_id": 9,
        "source": "/lake/people",
    }
    base.update(changes)
    return ChangeEvent(**base)  # type: ignore[arg-type]  # each field of `base` has its field's type; a dict of them cannot say so


def test_upsert_round_trips_exactly() -> None:
    key, value, headers = encode_event(event())
    assert key == b'{"id":7}'
    body = json.loads(value)
    assert body["after"]["price"] == "12.50" and body["after"]["ratio"] == "Infinity"
    assert body["after"]["seen"] == "2026-01-02T03:04:05.000006Z"
    assert body["after"]["photo"] == "AAE="
    assert decode_event(key, value, headers) == event()


def test_delete_round_trips() -> None:
    deleted = event(op=Op.DELETE, after=None, row_hash=None)
    key, value, headers = encode_event(deleted)
    assert decode_event(key, value, headers) == deleted


def test_tombstone_decodes_to_a_versioned_delete() -> None:
    got = decode_event(b'{"id":7}', None, tombstone_headers("people", 11, ["bigint"]))
    assert got.op is Op.DELETE and got.key == (7,) and got.version == 11 and got.is_tombstone


def test_tombstone_without_headers_is_rejected() -> None:
    with pytest.raises(EnvelopeError, match="tombstone"):
        decode_event(b'{"id":7}', None, [])


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"v": 99}', "unsupported envelope version 99"),
        (b'{"v": 1, "op": "upsert"}', "malformed envelope: KeyError"),
        (b'{"v":1,"op":"merge","table":"t","version":1,"key":{},"after":null,"columns":[]}', "malformed"),
    ],
)
def test_bad_messages_say_what_is_wrong(value: bytes, match: str) -> None:
    with pytest.raises(EnvelopeError, match=match):
        decode_event(b"k", value, None)


def test_value_that_does_not_fit_its_type_is_an_envelope_error() -> None:
    _, value, headers = encode_event(event())
    body = json.loads(value)
    body["after"]["id"] = "seven"
    with pytest.raises(EnvelopeError, match="expected an integer"):
        decode_event(b'{"id":7}', json.dumps(body).encode(), headers)


def test_special_floats_and_exact_decimals() -> None:
    assert math.isnan(decode_value("NaN", "real"))
    assert decode_value("-Infinity", "double precision") == -math.inf
    assert decode_value("0.10", "numeric(5,2)") == Decimal("0.10")
    assert encode_value(Decimal("1E-7"), "numeric(20,10)") == "0.0000001"
    with pytest.raises(ValueError, match="decimal string"):
        decode_value(0.1, "numeric(5,2)")


def test_a_repair_tombstone_decodes_as_a_repair() -> None:
    """A repair's tombstone must not shadow its repair delete with an ordinary one."""
    from changes.envelope import REPAIR_BATCH_ID

    got = decode_event(b'{"id":7}', None, tombstone_headers("people", 11, ["bigint"], repair=True))
    assert got.batch_id == REPAIR_BATCH_ID
    assert decode_event(b'{"id":7}', None, tombstone_headers("people", 11, ["bigint"])).batch_id is None
