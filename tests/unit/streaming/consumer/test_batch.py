"""Batch preparation (both decoders, compaction, staging, offsets) and the bisection plan, on plain data."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pytest

from changes.collapse import latest_per_key
from changes.envelope import ChangeEvent, Op, encode_event, tombstone_headers
from changes.type_mapping import TargetColumn
from connectors.postgres_schema import TableRef
from streaming.consumer import columnar
from streaming.consumer.batch import (
    IS_DELETE,
    IS_REPAIR,
    MESSAGE_INDEX,
    VERSION,
    BatchBounds,
    PartitionBatch,
    Refused,
    TableTarget,
    collect_wait,
    decode_each,
    isolate_poison,
    prepare_partition,
)
from streaming.consumer.decode import Message, TableDecoder

from .test_decode import FakeMessage

COLUMNS = (TargetColumn("id", "bigint"), TargetColumn("name", "text"), TargetColumn("ratio", "double precision"))
TOPIC = "lakesync.people"
TARGET = TableTarget("people", TOPIC, TableRef("public", "people"), ("id",))


def upsert(key: int, version: int, offset: int, batch_id: int = 1, name: str | None = None) -> FakeMessage:
    ev = ChangeEvent(
        op=Op.UPSERT,
        table="people",
        key=(key,),
        key_names=("id",),
        version=version,
        after={"id": key, "name": name if name is not None else f"v{version}", "ratio": 0.5},
        columns=COLUMNS,
        batch_id=batch_id,
        commit_ts=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )
    return FakeMessage(*encode_event(ev), t=TOPIC, o=offset)


def delete(key: int, version: int, offset: int, batch_id: int = 1) -> FakeMessage:
    ev = ChangeEvent(
        op=Op.DELETE, table="people", key=(key,), key_names=("id",), version=version, columns=COLUMNS, batch_id=batch_id
    )
    return FakeMessage(*encode_event(ev), t=TOPIC, o=offset)


def tombstone(key: int, version: int, offset: int, repair: bool = False) -> FakeMessage:
    headers = tombstone_headers("people", version, ["bigint"], repair=repair)
    return FakeMessage(f'{{"id":{key}}}'.encode(), None, headers, t=TOPIC, o=offset)


def prepare(messages: list[FakeMessage]) -> PartitionBatch:
    consumed: list[Message] = list(messages)
    return prepare_partition(consumed, [m.value() for m in messages], TARGET, TableDecoder("people", ["id"]))


def staged(groups: Iterable[Any]) -> dict[int, dict[str, Any]]:
    """key → the staged row (values and trailer), over every group of a batch."""
    found: dict[int, dict[str, Any]] = {}
    for group in groups:
        rows = group.rows if hasattr(group, "rows") else group[1]
        for row in rows.to_pylist():
            found[row["id"]] = row
    return found


def test_the_latest_version_per_key_survives_whatever_the_arrival_order() -> None:
    batch = prepare([upsert(1, 5, 0), upsert(1, 3, 1), upsert(2, 1, 2), upsert(2, 2, 3)])
    assert {k: r[VERSION] for k, r in staged(batch.groups).items()} == {1: 5, 2: 2}
    assert batch.compacted_away == 2 and len(batch.messages) == 4


def test_an_upsert_beats_a_delete_of_the_same_version_and_a_later_delete_wins() -> None:
    batch = prepare([tombstone(1, 4, 0), upsert(1, 4, 1), upsert(2, 4, 2), delete(2, 5, 3), tombstone(2, 5, 4)])
    assert {k: r[IS_DELETE] for k, r in staged(batch.groups).items()} == {1: False, 2: True}
    assert {len(g.shape.columns) for g in batch.groups} == {1, 3}  # deletes stage the key only


def test_on_a_full_tie_the_later_offset_wins() -> None:
    """A replayed change (same position) can come twice in one batch: the later one is kept."""
    batch = prepare([upsert(1, 5, 0, name="first"), upsert(1, 5, 1, name="second")])
    assert staged(batch.groups)[1]["name"] == "second" and staged(batch.groups)[1][MESSAGE_INDEX] == 1


def test_a_batch_spans_its_offsets_and_resumes_after_the_last() -> None:
    batch = prepare([upsert(1, 1, 10), upsert(2, 1, 11), upsert(3, 1, 14)])
    assert (batch.first_offset, batch.last_offset, batch.next_offset) == (10, 14, 15)
    assert batch.describe_offsets() == f"{TOPIC}[0:10-14]"


def test_undecodable_messages_are_rejected_but_their_offsets_count() -> None:
    batch = prepare([upsert(1, 1, 0), FakeMessage(b"x", b"garbage", [], t=TOPIC, o=1)])
    assert len(batch.rejected) == 1 and batch.rejected[0].message.offset() == 1
    assert batch.next_offset == 2 and list(staged(batch.groups)) == [1]


def test_a_malformed_tombstone_is_rejected_alone() -> None:
    batch = prepare([upsert(1, 1, 0), FakeMessage(b'{"id":2}', None, [], t=TOPIC, o=1), upsert(3, 1, 2)])
    assert [r.message.offset() for r in batch.rejected] == [1] and sorted(staged(batch.groups)) == [1, 3]


def test_repair_flag_travels_with_the_change() -> None:
    batch = prepare([upsert(1, 3, 0, batch_id=-1), tombstone(2, 3, 1, repair=True), delete(3, 3, 2, batch_id=-1)])
    assert all(row[IS_REPAIR] for row in staged(batch.groups).values())


def _random_batch(rng: random.Random, size: int) -> list[FakeMessage]:
    messages = []
    for offset in range(size):
        key, version = rng.randrange(12), rng.randrange(1, 6)
        batch_id = -1 if rng.random() < 0.1 else 1
        kind = rng.random()
        if kind < 0.6:
            messages.append(upsert(key, version, offset, batch_id, name=f"n{offset}"))
        elif kind < 0.8:
            messages.append(delete(key, version, offset, batch_id))
        else:
            messages.append(tombstone(key, version, offset, repair=batch_id == -1))
    return messages


@pytest.mark.parametrize("seed", range(25))
def test_the_columnar_decoder_stages_what_the_message_by_message_one_stages(seed: int) -> None:
    """Same survivors, same staged values and trailer, on random mixes of upserts, deletes, tombstones, repairs."""
    messages = _random_batch(random.Random(seed), 60)
    decoder = TableDecoder("people", ["id"])
    fast = columnar.decode(messages, [m.value() for m in messages], decoder)
    slow, rejected, kept = decode_each(messages, TARGET, decoder)
    assert fast is not None and not rejected
    assert staged(fast.groups) == staged(slow) and fast.kept == kept


@pytest.mark.parametrize("seed", range(10))
def test_compaction_keeps_what_latest_per_key_keeps(seed: int) -> None:
    """The columnar compaction is changes.collapse.latest_per_key over (version, rank), ties to the later offset."""
    messages = _random_batch(random.Random(100 + seed), 80)
    decoder = TableDecoder("people", ["id"])
    fast = columnar.decode(messages, [m.value() for m in messages], decoder)
    assert fast is not None
    decoded = [(decoder.decode(m), i) for i, m in enumerate(messages)]
    expected = latest_per_key(decoded, key=lambda d: d[0][0], order=lambda d: d[0][1])
    assert {k: r[MESSAGE_INDEX] for k, r in staged(fast.groups).items()} == {d[0][0][0]: d[1] for d in expected}


def _edited(edit: Callable[[dict[str, Any]], object]) -> FakeMessage:
    message = upsert(9, 1, 1)
    body = json.loads(message.v or b"")
    edit(body)
    message.v = json.dumps(body).encode()
    return message


@pytest.mark.parametrize(
    "irregular",
    [
        lambda: _edited(lambda b: b["after"].update(ratio="NaN")),
        lambda: _edited(lambda b: b.update(columns=b["columns"].replace("]]", '],["extra","text"]]'))),
        lambda: _edited(lambda b: b.update(unknown_field=1)),
        lambda: _edited(lambda b: b["after"].update(id=10)),
        lambda: _edited(lambda b: b.update(v=2)),
        lambda: _edited(lambda b: b["key"].update(id=[9])),
        lambda: FakeMessage(b"x", b'{"v":1}\n{"v":1}', [], t=TOPIC, o=1),
        lambda: FakeMessage(b"x", b"", [], t=TOPIC, o=1),
    ],
    ids=["nan-float", "second-schema", "unknown-field", "key-disagrees", "version-2", "list-key", "two-lines", "empty"],
)
def test_an_irregular_batch_is_decoded_message_by_message(irregular: Callable[[], FakeMessage]) -> None:
    """Whatever the columnar decoder does not vouch for goes through decode.py, record by record."""
    messages = [upsert(1, 1, 0), irregular(), upsert(2, 1, 2)]
    decoder = TableDecoder("people", ["id"])
    assert columnar.decode(messages, [m.value() for m in messages], decoder) is None
    batch = prepare(messages)
    assert {1, 2} <= set(staged(batch.groups))


def test_values_of_mixed_kinds_are_staged_as_postgres_text() -> None:
    """A float column carrying "NaN" and numbers: one text column, read by PostgreSQL per value."""
    batch = prepare([upsert(1, 1, 0), _edited(lambda b: b["after"].update(ratio="NaN"))])
    assert {k: r["ratio"] for k, r in staged(batch.groups).items()} == {1: "0.5", 9: "NaN"}


def test_a_list_or_object_value_is_rejected_before_staging() -> None:
    message = _edited(lambda b: b["after"].update(name=["a"]))
    batch = prepare([upsert(1, 1, 0), message])
    assert [type(r.error).__name__ for r in batch.rejected] == ["UnconvertibleValueError"]


def test_bisection_isolates_every_bad_item_and_applies_the_rest() -> None:
    """Halves are applied recursively; only single refused items are reported."""
    applied: list[list[int]] = []

    def attempt(part: Sequence[int]) -> int | Refused:
        if any(item in (3, 11) for item in part):
            return Refused(ValueError(f"bad in {list(part)}"))
        applied.append(list(part))
        return len(part)

    found = isolate_poison(range(16), attempt)
    assert sorted(item for item, _ in found.poisoned) == [3, 11]
    assert sorted(i for part in applied for i in part) == [i for i in range(16) if i not in (3, 11)]
    assert sum(found.applied) == 14
    assert found.attempts <= 2 * 2 * 4 + 1


def test_bisection_of_a_clean_batch_is_one_attempt() -> None:
    found = isolate_poison([1, 2, 3], lambda part: len(part))
    assert found.attempts == 1 and found.applied == [3] and not found.poisoned


# --- when a batch being collected closes -----------------------------------------------------

BOUNDS = BatchBounds(max_messages=100, max_bytes=10_000, max_wait_s=0.5, idle_s=0.05)


def test_an_empty_batch_waits_in_idle_steps_until_its_wait_is_over() -> None:
    assert collect_wait(BOUNDS, elapsed_s=0.0, messages=0, size=0, quiet=False) == 0.05
    assert collect_wait(BOUNDS, elapsed_s=0.3, messages=0, size=0, quiet=True) == 0.05
    assert collect_wait(BOUNDS, elapsed_s=0.48, messages=0, size=0, quiet=True) == pytest.approx(0.02)
    assert collect_wait(BOUNDS, elapsed_s=0.5, messages=0, size=0, quiet=True) is None


def test_a_batch_holding_messages_closes_when_a_fetch_brings_none() -> None:
    # A commit's burst arrived in the first fetch; the second brought nothing: apply now.
    assert collect_wait(BOUNDS, elapsed_s=0.06, messages=40, size=4_000, quiet=False) == 0.05
    assert collect_wait(BOUNDS, elapsed_s=0.11, messages=40, size=4_000, quiet=True) is None


def test_a_batch_keeps_filling_while_messages_keep_coming() -> None:
    assert collect_wait(BOUNDS, elapsed_s=0.3, messages=60, size=6_000, quiet=False) == 0.05
    assert collect_wait(BOUNDS, elapsed_s=0.5, messages=60, size=6_000, quiet=False) is None


@pytest.mark.parametrize(("messages", "size"), [(100, 10), (5, 10_000)])
def test_a_full_batch_closes_at_once(messages: int, size: int) -> None:
    assert collect_wait(BOUNDS, elapsed_s=0.0, messages=messages, size=size, quiet=False) is None
