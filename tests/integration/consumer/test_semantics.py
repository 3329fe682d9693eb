"""What the consumer writes: version guard, deletes, repairs, replay, schema growth, poison records."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from confluent_kafka import Consumer

from changes import dead_letter as dlq
from changes.type_mapping import TargetColumn
from connectors.kafka_messages import consumed_headers
from lakesync.config import LakesyncSettings
from tests.support.consumer_run import run_until_caught_up
from tests.support.consumer_topics import COLUMNS, Message, delete, make_settings, produce, rows, tombstone, upsert
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def topic_of(settings: LakesyncSettings) -> str:
    return settings.tables[0].topic_name


def name_of(settings: LakesyncSettings) -> str:
    return settings.tables[0].name


def test_out_of_order_versions_end_in_the_newest(table_settings: LakesyncSettings) -> None:
    """Older versions delivered after newer ones, in one batch and across batches, never win."""
    name, topic = name_of(table_settings), topic_of(table_settings)
    produce(
        table_settings,
        topic,
        [upsert(name, 1, 5), upsert(name, 1, 3), upsert(name, 2, 2), upsert(name, 2, 9), upsert(name, 2, 4)],
    )
    run_until_caught_up(table_settings, topic)
    produce(table_settings, topic, [upsert(name, 1, 4), upsert(name, 2, 8)])
    run_until_caught_up(table_settings, topic)
    assert rows(table_settings, name) == [(1, "v5", Decimal("1.00"), 5), (2, "v9", Decimal("1.00"), 9)]


def test_replaying_the_whole_topic_gives_the_same_table(
    table_settings: LakesyncSettings, settings: LakesyncSettings
) -> None:
    """A second group reading everything again from offset 0 changes nothing."""
    name, topic = name_of(table_settings), topic_of(table_settings)
    messages = [upsert(name, k, v, name=f"k{k}v{v}") for v in (1, 2, 3) for k in range(40)]
    messages += [m for k in range(0, 40, 4) for m in delete(name, k, 4)]
    produce(table_settings, topic, messages)
    run_until_caught_up(table_settings, topic)
    first = rows(table_settings, name)
    assert len(first) == 30 and all(r[3] == 3 for r in first)

    replay = make_settings(settings, name, group=f"replay-{name}")
    run_until_caught_up(replay, topic)
    assert rows(table_settings, name) == first


def test_a_stale_upsert_after_a_delete_stays_deleted(table_settings: LakesyncSettings) -> None:
    """The delete's version is kept as a tombstone; an older upsert arriving later is skipped.

    The image of the delete's own commit is not stale (changes/order.py: within a commit the
    image outranks the delete, as when an overwrite deletes and re-inserts a key).
    """
    name, topic = name_of(table_settings), topic_of(table_settings)
    produce(table_settings, topic, [upsert(name, 1, 1), upsert(name, 2, 1), *delete(name, 1, 5)])
    run_until_caught_up(table_settings, topic)
    produce(table_settings, topic, [upsert(name, 1, 4), upsert(name, 1, 3)])
    run_until_caught_up(table_settings, topic)
    assert [r[0] for r in rows(table_settings, name)] == [2]
    produce(table_settings, topic, [upsert(name, 1, 5, name="same commit")])
    run_until_caught_up(table_settings, topic)
    assert rows(table_settings, name)[0] == (1, "same commit", Decimal("1.00"), 5)
    produce(table_settings, topic, [upsert(name, 1, 6, name="back")])
    run_until_caught_up(table_settings, topic)
    assert rows(table_settings, name)[0] == (1, "back", Decimal("1.00"), 6)


def test_tombstone_only_delete(table_settings: LakesyncSettings) -> None:
    """A tombstone without its delete envelope (e.g. after compaction) deletes the row."""
    name, topic = name_of(table_settings), topic_of(table_settings)
    produce(table_settings, topic, [upsert(name, 1, 1), upsert(name, 2, 1)])
    run_until_caught_up(table_settings, topic)
    produce(table_settings, topic, [tombstone(name, 1, 2), tombstone(name, 2, 1)])
    run_until_caught_up(table_settings, topic)
    assert [r[0] for r in rows(table_settings, name)] == [2]  # key 2's tombstone is not newer


def test_repair_overwrites_at_the_same_version_and_a_stream_event_does_not(table_settings: LakesyncSettings) -> None:
    """Reconcile repairs (batch_id -1) use `<=`; stream events need a strictly newer version."""
    name, topic = name_of(table_settings), topic_of(table_settings)
    produce(table_settings, topic, [upsert(name, 1, 7, name="original"), upsert(name, 2, 7, name="original")])
    run_until_caught_up(table_settings, topic)
    produce(
        table_settings, topic, [upsert(name, 1, 7, name="stream"), upsert(name, 2, 7, name="repaired", batch_id=-1)]
    )
    run_until_caught_up(table_settings, topic)
    assert [r[1] for r in rows(table_settings, name)] == ["original", "repaired"]


def test_a_new_envelope_column_is_added_to_the_table(table_settings: LakesyncSettings) -> None:
    """When the source grows a column, the target gets it (nullable) and new rows fill it."""
    name, topic = name_of(table_settings), topic_of(table_settings)
    produce(table_settings, topic, [upsert(name, 1, 1)])
    run_until_caught_up(table_settings, topic)
    wider = (*COLUMNS, TargetColumn("tags", "jsonb"), TargetColumn("blob", "bytea"))
    produce(
        table_settings,
        topic,
        [upsert(name, 2, 2, columns=wider, extra={"tags": {"a": [1, 2]}, "blob": b"\x00\x01\x02"})],
    )
    run_until_caught_up(table_settings, topic)
    got = rows(table_settings, name, "id, tags, blob")
    assert got == [(1, None, None), (2, {"a": [1, 2]}, b"\x00\x01\x02")]


def test_a_poison_record_goes_to_the_dead_letter_topic_and_its_neighbours_are_applied(
    table_settings: LakesyncSettings, unique_name: str
) -> None:
    """A value PostgreSQL refuses and an undecodable message are set aside with their headers."""
    name, topic = name_of(table_settings), topic_of(table_settings)
    key, value, headers = upsert(name, 13, 1, price="9.99")
    assert value is not None
    bad_price = (key, value.replace(b'"9.99"', b'"not-a-number"'), headers)
    garbage: Message = (b'{"id":14}', b"{not json", [])
    produce(
        table_settings,
        topic,
        [upsert(name, k, 1) for k in range(1, 13)] + [bad_price, garbage] + [upsert(name, k, 1) for k in range(15, 30)],
    )
    run_until_caught_up(table_settings, topic)
    assert [r[0] for r in rows(table_settings, name)] == [*range(1, 13), *range(15, 30)]

    letters = read_dead_letters(table_settings, {bad_price[1], garbage[1]})
    refused, undecodable = letters[bad_price[1]], letters[garbage[1]]
    assert refused[dlq.HEADER_STAGE] == "consume"
    assert refused[dlq.HEADER_SQLSTATE] == "22P02"
    assert refused[dlq.HEADER_ERROR_CLASS] == "InvalidTextRepresentation"
    assert refused[dlq.HEADER_TOPIC] == topic and refused[dlq.HEADER_TABLE] == name
    assert "not-a-number" in refused[dlq.HEADER_MESSAGE]
    assert int(refused[dlq.HEADER_OFFSET]) >= 0 and dlq.HEADER_PARTITION in refused
    assert undecodable[dlq.HEADER_ERROR_CLASS] == "EnvelopeError" and dlq.HEADER_SQLSTATE not in undecodable


def read_dead_letters(settings: LakesyncSettings, values: set[bytes | None]) -> dict[bytes | None, dict[str, str]]:
    """Headers of the dead-letter records whose value is one of `values`."""
    consumer = Consumer(
        {**settings.kafka.client_config(), "group.id": f"dlq-reader-{id(values)}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([settings.kafka.dead_letter_topic])
    found: dict[bytes | None, dict[str, str]] = {}
    try:

        def poll() -> bool:
            for message in consumer.consume(500, 0.5):
                if message.error() is None and message.value() in values:
                    found[message.value()] = {k: v.decode() for k, v in consumed_headers(message) or []}
            return len(found) == len(values)

        wait_until(poll, 30, "dead-letter records")
    finally:
        consumer.close()
    return found


def test_a_key_that_appears_between_the_probe_and_the_copy_is_merged(
    table_settings: LakesyncSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New keys are COPYed straight into the target; if one turns out to exist, the batch is merged."""
    from streaming.consumer.apply import BatchApplier

    name, topic = name_of(table_settings), topic_of(table_settings)
    produce(table_settings, topic, [upsert(name, 1, 1), upsert(name, 2, 1)])
    run_until_caught_up(table_settings, topic)
    # The probe misses key 1 (as if another writer had inserted it just after): the COPY fails.
    monkeypatch.setattr(BatchApplier, "_keys_known", lambda self, conn, group, part: False)
    produce(table_settings, topic, [upsert(name, 1, 2, name="newer"), upsert(name, 3, 1)])
    run_until_caught_up(table_settings, topic)
    assert [(r[0], r[1], r[3]) for r in rows(table_settings, name)] == [(1, "newer", 2), (2, "v1", 1), (3, "v1", 1)]


def _malformed(name: str, shape: str) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """One malformed record of `shape`, made from a valid upsert of key 50 by editing its JSON."""
    key, value, headers = upsert(name, 50, 1)
    body = json.loads(value or b"")
    if shape == "key-other-name":
        body["key"] = {"person_id": 50}
    elif shape == "key-other-count":
        body["key"] = {"id": 50, "name": "v1"}
    elif shape == "key-not-scalar":
        body["key"] = {"id": [50]}
    elif shape == "unknown-type":
        body["columns"] = body["columns"].replace("text", "text); DROP TABLE people; --")
    elif shape == "key-disagrees-with-after":
        body["after"]["id"] = 51
    return key, json.dumps(body).encode(), headers


@pytest.mark.parametrize(
    "shape", ["key-other-name", "key-other-count", "key-not-scalar", "unknown-type", "key-disagrees-with-after"]
)
def test_a_malformed_record_is_dead_lettered_and_its_neighbours_applied(
    table_settings: LakesyncSettings, shape: str
) -> None:
    """Each malformed shape goes to the dead-letter topic with its headers; the service keeps going."""
    name, topic = name_of(table_settings), topic_of(table_settings)
    bad = _malformed(name, shape)
    produce(
        table_settings,
        topic,
        [upsert(name, k, 1) for k in range(1, 40)] + [bad] + [upsert(name, k, 2) for k in range(1, 40)],
    )
    run_until_caught_up(table_settings, topic)
    assert rows(table_settings, name) == [(k, "v2", Decimal("1.00"), 2) for k in range(1, 40)]
    letter = read_dead_letters(table_settings, {bad[1]})[bad[1]]
    assert letter[dlq.HEADER_ERROR_CLASS] == "EnvelopeError" and dlq.HEADER_SQLSTATE not in letter
    assert letter[dlq.HEADER_TABLE] == name and letter[dlq.HEADER_TOPIC] == topic
    assert int(letter[dlq.HEADER_OFFSET]) >= 0
