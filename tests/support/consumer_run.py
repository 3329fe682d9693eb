"""Running the consumer service in tests and waiting until it applied a topic."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from confluent_kafka import Consumer, TopicPartition

from lakesync.config import LakesyncSettings
from lakesync.streaming.consumer.service import ConsumerService


def end_offsets(settings: LakesyncSettings, topic: str) -> dict[int, int]:
    consumer = Consumer({**settings.kafka.client_config(), "group.id": "offset-probe"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
    finally:
        consumer.close()


def stored_offsets(settings: LakesyncSettings, group: str, topic: str) -> dict[int, int]:
    with psycopg.connect(**settings.postgres.connection_kwargs()) as conn:
        exists = conn.execute("SELECT to_regclass('lakesync.consumer_offsets')").fetchone()
        if not exists or exists[0] is None:
            return {}
        rows = conn.execute(
            "SELECT partition, next_offset FROM lakesync.consumer_offsets WHERE group_id = %s AND topic = %s",
            (group, topic),
        ).fetchall()
    return dict(rows)


def wait_until(condition: Callable[[], bool], timeout_s: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def wait_caught_up(settings: LakesyncSettings, group: str, topic: str, timeout_s: float = 60.0) -> None:
    """Until PostgreSQL's stored offsets reach the end of every non-empty partition."""
    ends = {p: o for p, o in end_offsets(settings, topic).items() if o > 0}
    wait_until(lambda: all(stored_offsets(settings, group, topic).get(p, 0) >= o for p, o in ends.items()),
               timeout_s, f"group {group} to reach {ends} on {topic}")


@contextmanager
def running(settings: LakesyncSettings) -> Iterator[ConsumerService]:
    """The service in a thread of this process (no signal handlers), stopped on exit."""
    service = ConsumerService(settings)
    failure: list[BaseException] = []

    def target() -> None:
        try:
            service.run(handle_signals=False)
        except BaseException as exc:  # surfaced to the test below
            failure.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    wait_until(lambda: service.started.is_set() or bool(failure), 30, "service start")
    try:
        yield service
    finally:
        service.stop()
        thread.join(15)
        assert not thread.is_alive(), "service did not stop within 15 s"
    if failure:
        raise failure[0]


def run_until_caught_up(settings: LakesyncSettings, topic: str, timeout_s: float = 60.0) -> None:
    with running(settings):
        wait_caught_up(settings, settings.consumer.group_id, topic, timeout_s)
