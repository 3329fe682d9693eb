"""Has the consumer group applied everything on a table's topic? (reconcile and seeding wait for it)

The consumer stores, in the same transaction as the rows, the next offset to read per
partition (`lakesync.consumer_offsets`). Once those reach the topic's end offsets taken at one
moment, every event published before that moment is in PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg
from confluent_kafka import Consumer, TopicPartition
from psycopg import sql

from connectors.errors import ConsumerBehindError
from connectors.postgres_schema import BOOKKEEPING_SCHEMA, OFFSETS_TABLE
from lakesync.config import LakesyncSettings, TableMapping


def end_offsets(settings: LakesyncSettings, topic: str) -> dict[int, int]:
    """The topic's log-end offset per partition, now."""
    consumer = Consumer({**settings.kafka.client_config(), "group.id": "lakesync-reconcile-probe"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
    finally:
        consumer.close()


def applied_offsets(settings: LakesyncSettings, topic: str) -> dict[int, int]:
    """The next offset the consumer group will apply, per partition (empty if it never ran)."""
    query = sql.SQL("SELECT partition, next_offset FROM {} WHERE group_id = %s AND topic = %s").format(
        sql.Identifier(BOOKKEEPING_SCHEMA, OFFSETS_TABLE)
    )
    with psycopg.connect(**settings.postgres.connection_kwargs()) as conn:
        if conn.execute("SELECT to_regclass(%s)", (f"{BOOKKEEPING_SCHEMA}.{OFFSETS_TABLE}",)).fetchone() == (None,):
            return {}
        return dict(conn.execute(query, (settings.consumer.group_id, topic)).fetchall())


def behind(wanted: dict[int, int], applied: dict[int, int]) -> int:
    """Messages still to apply before `applied` reaches `wanted` (pure)."""
    return sum(max(0, end - applied.get(partition, 0)) for partition, end in wanted.items())


def wait_for_consumer(
    settings: LakesyncSettings,
    table: TableMapping,
    timeout_s: float,
    on_wait: Callable[[int], None] = lambda _: None,
    *,
    remedy: str = (
        "reconcile compares PostgreSQL once it has applied what was published. Start `lakesync consume`, or "
        "pass --no-wait to compare anyway (unapplied changes then show as drift)."
    ),
) -> float:
    """Block until the group applied the topic up to its current end; seconds waited.

    `remedy` ends the error's line when the wait times out: why the caller waits and what to do.
    """
    started = time.monotonic()
    wanted = end_offsets(settings, table.topic_name)
    while (missing := behind(wanted, applied_offsets(settings, table.topic_name))) > 0:
        waited = time.monotonic() - started
        if waited > timeout_s:
            raise ConsumerBehindError(
                f"table {table.name!r}: consumer group {settings.consumer.group_id!r} is still {missing} "
                f"message(s) behind on {table.topic_name} after {timeout_s:.0f} s; {remedy}"
            )
        on_wait(missing)
        time.sleep(1.0)
    return time.monotonic() - started
