"""Batch preparation (compaction, grouping, offsets) and the bisection plan, on plain data."""

from __future__ import annotations

import datetime as dt

from changes.envelope import ChangeEvent, Op, encode_event, tombstone_headers
from changes.type_mapping import TargetColumn
from connectors.postgres_schema import TableRef
from streaming.consumer.batch import Refused, TableTarget, isolate_poison, prepare_batch
from streaming.consumer.decode import KEY, ORDER, ROW, TableDecoder

from .test_decode import FakeMessage

COLUMNS = (TargetColumn("id", "bigint"), TargetColumn("name", "text"))
TOPIC = "lakesync.people"
TARGET = TableTarget("people", TOPIC, TableRef("public", "people"), ("id",))


def upsert(key: int, version: int, offset: int, partition: int = 0, batch_id: int = 1) -> FakeMessage:
    ev = ChangeEvent(
        op=Op.UPSERT,
        table="people",
        key=(key,),
        key_names=("id",),
        version=version,
        after={"id": key, "name": f"v{version}"},
        columns=COLUMNS,
        batch_id=batch_id,
        commit_ts=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )
    return FakeMessage(*encode_event(ev), t=TOPIC, p=partition, o=offset)


def delete(key: int, version: int, offset: int) -> FakeMessage:
    return FakeMessage(
        f'{{"id":{key}}}'.encode(), None, tombstone_headers("people", version, ["bigint"]), t=TOPIC, o=offset
    )


def prepare(messages: list[FakeMessage]):  # type: ignore[no-untyped-def]
    return prepare_batch(messages, {TOPIC: TARGET}, {TOPIC: TableDecoder("people", ["id"])})


def test_the_latest_version_per_key_survives_whatever_the_arrival_order() -> None:
    batch = prepare([upsert(1, 5, 0), upsert(1, 3, 1), upsert(2, 1, 2), upsert(2, 2, 3)])
    survivors = {c[KEY]: c[ORDER][0] for g in batch.groups for c in g.changes}
    assert survivors == {(1,): 5, (2,): 2}
    assert batch.compacted_away == 2 and batch.messages == 4


def test_an_upsert_beats_a_delete_of_the_same_version_and_a_later_delete_wins() -> None:
    batch = prepare([delete(1, 4, 0), upsert(1, 4, 1), upsert(2, 4, 2), delete(2, 5, 3)])
    by_key = {c[KEY]: c[ROW][-2] for g in batch.groups for c in g.changes}
    assert by_key == {(1,): False, (2,): True}
    assert {len(g.shape.columns) for g in batch.groups} == {1, 2}  # deletes stage the key only


def test_offsets_span_each_partition_and_next_offsets_follow_the_last() -> None:
    batch = prepare([upsert(1, 1, 10, partition=0), upsert(2, 1, 11, partition=0), upsert(3, 1, 4, partition=2)])
    assert batch.offsets == {(TOPIC, 0): [10, 11], (TOPIC, 2): [4, 4]}
    assert batch.next_offsets == {(TOPIC, 0): 12, (TOPIC, 2): 5}
    assert batch.describe_offsets() == f"{TOPIC}[0:10-11,2:4-4]"


def test_undecodable_messages_are_rejected_but_their_offsets_count() -> None:
    batch = prepare([upsert(1, 1, 0), FakeMessage(b"x", b"garbage", [], t=TOPIC, o=1)])
    assert len(batch.rejected) == 1 and batch.rejected[0].message.offset() == 1
    assert batch.next_offsets == {(TOPIC, 0): 2} and batch.messages_by_table == {"people": 2}


def test_bisection_isolates_every_bad_item_and_applies_the_rest() -> None:
    """Halves are applied recursively; only single refused items are reported."""
    applied: list[list[int]] = []

    def attempt(part):  # type: ignore[no-untyped-def]
        if any(item in (3, 11) for item in part):
            return Refused(ValueError(f"bad in {list(part)}"))
        applied.append(list(part))
        return len(part)

    found = isolate_poison(list(range(16)), attempt)
    assert sorted(item for item, _ in found.poisoned) == [3, 11]
    assert sorted(i for part in applied for i in part) == [i for i in range(16) if i not in (3, 11)]
    assert sum(found.applied) == 14
    assert found.attempts <= 2 * 2 * 4 + 1


def test_bisection_of_a_clean_batch_is_one_attempt() -> None:
    found = isolate_poison([1, 2, 3], lambda part: len(part))
    assert found.attempts == 1 and found.applied == [3] and not found.poisoned


def test_repair_flag_travels_with_the_change() -> None:
    batch = prepare([upsert(1, 3, 0, batch_id=-1)])
    assert batch.groups[0].has_repairs and batch.groups[0].has_upserts and not batch.groups[0].has_deletes
