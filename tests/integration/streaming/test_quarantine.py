"""Rows that cannot be synced go to the dead-letter topic with the reason; the rest flows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from changes import dead_letter as dl
from lakesync.config import ColumnMapping, LakesyncSettings, TableMapping
from tests.support.stream_topics import create_delta, events, read_new, read_topic

pytestmark = pytest.mark.integration


def test_null_key_failed_cast_and_nul_character_are_quarantined_with_reasons(
    spark: Any,
    make_settings: Callable[..., LakesyncSettings],
    mapping: Callable[..., TableMapping],
    run_once: Callable[[LakesyncSettings], None],
) -> None:
    table = mapping(
        columns=[
            ColumnMapping(name="id"),
            ColumnMapping(name="name"),
            ColumnMapping(name="amount", source="amount_text", cast="decimal(10,2)"),
        ]
    )
    settings = make_settings(tables=[table])
    dead_before = read_topic(settings.kafka, settings.kafka.dead_letter_topic) if _exists(settings) else []
    create_delta(
        spark,
        table.source,
        [
            (1, "ok", "12.50"),
            (None, "no key", "1"),
            (3, "bad amount", "12,5x"),
            (4, "nul\u0000char", "2"),
        ],
        "id long, name string, amount_text string",
    )
    run_once(settings)

    published = events(read_topic(settings.kafka, table.topic_name))
    assert [(e.key, str((e.after or {})["amount"])) for e in published] == [((1,), "12.50")]
    letters = [
        r
        for r in read_new(settings.kafka, settings.kafka.dead_letter_topic, dead_before)
        if r.headers.get(dl.HEADER_TABLE) == table.name.encode()
    ]
    reasons = sorted(r.headers[dl.HEADER_MESSAGE].decode() for r in letters)
    assert reasons == [
        "row cannot be synced: cast_failed:amount",
        "row cannot be synced: nul_character:name",
        "row cannot be synced: null_key:id",
    ]
    assert {r.headers[dl.HEADER_STAGE] for r in letters} == {b"stream"}
    assert {r.headers[dl.HEADER_VERSION] for r in letters} == {b"0"}
    assert all(r.value for r in letters)  # the row itself travels with its reason


def _exists(settings: LakesyncSettings) -> bool:
    from confluent_kafka.admin import AdminClient

    topics = AdminClient(settings.kafka.client_config()).list_topics(timeout=10).topics
    return settings.kafka.dead_letter_topic in topics


@pytest.mark.parametrize(
    ("client_limit", "limit_named"),
    [(None, "message.max.bytes (1000000)"), (5_000_000, "the topic's max.message.bytes")],
    ids=["refused-by-the-producer", "refused-by-the-broker"],
)
def test_a_row_too_large_for_kafka_is_quarantined_and_the_stream_goes_on(
    spark: Any,
    make_settings: Callable[..., LakesyncSettings],
    mapping: Callable[..., TableMapping],
    run_once: Callable[[LakesyncSettings], None],
    client_limit: int | None,
    limit_named: str,
) -> None:
    """A 2 MB value against a 1 MB limit would fail every replay of its batch: it goes to the dead
    letters (key, size, limit; not the value), its neighbours are published, later changes flow."""
    import base64
    import os

    table = mapping()
    settings = make_settings(tables=[table])
    if client_limit:
        properties = {"message.max.bytes": str(client_limit)}
        settings = settings.model_copy(
            update={"kafka": settings.kafka.model_copy(update={"client_properties": properties})}
        )
    dead_before = read_topic(settings.kafka, settings.kafka.dead_letter_topic) if _exists(settings) else []
    huge = base64.b64encode(os.urandom(1_500_000)).decode()  # 2 MB of text compression barely shrinks
    create_delta(spark, table.source, [(1, "small"), (2, huge), (3, "small")], "id long, name string")
    run_once(settings)
    assert sorted(e.key[0] for e in events(read_topic(settings.kafka, table.topic_name))) == [1, 3]
    letters = [
        r
        for r in read_new(settings.kafka, settings.kafka.dead_letter_topic, dead_before)
        if r.headers.get(dl.HEADER_TABLE) == table.name.encode()
    ]
    assert [(r.key, r.value, r.headers[dl.HEADER_ERROR_CLASS]) for r in letters] == [
        (b'{"id":2}', None, b"oversized_row")
    ]
    reason = letters[0].headers[dl.HEADER_MESSAGE].decode()
    assert limit_named in reason and "bytes" in reason, reason
    # The stream is not wedged: the next change of the same key, small again, is published.
    spark.sql(f"UPDATE delta.`{table.source}` SET name = 'small again' WHERE id = 2")
    run_once(settings)
    latest = {e.key[0]: e for e in events(read_topic(settings.kafka, table.topic_name))}
    assert latest[2].after is not None and latest[2].after["name"] == "small again"
