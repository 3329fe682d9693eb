"""Running the consumer service in tests and waiting until it applied a topic."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from connectors.consumer_position import applied_offsets, end_offsets
from lakesync.config import LakesyncSettings
from streaming.consumer.service import ConsumerService
from tests.support.wait import wait_until


def wait_caught_up(settings: LakesyncSettings, topic: str, timeout_s: float = 60.0) -> None:
    """Until the group's offsets stored in PostgreSQL reach the end of every non-empty partition."""
    ends = {p: o for p, o in end_offsets(settings, topic).items() if o > 0}
    wait_until(
        lambda: all(applied_offsets(settings, topic).get(p, 0) >= o for p, o in ends.items()),
        timeout_s,
        f"group {settings.consumer.group_id} to reach {ends} on {topic}",
    )


@contextmanager
def running(settings: LakesyncSettings) -> Iterator[ConsumerService]:
    """The service in a thread of this process (no signal handlers), stopped on exit."""
    service = ConsumerService(settings)
    failure: list[BaseException] = []

    def target() -> None:
        try:
            service.run(handle_signals=False)
        except BaseException as exc:  # noqa: BLE001 (surfaced to the test below)
            failure.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    wait_until(lambda: service.started.is_set() or bool(failure), 30, "service start")
    try:
        yield service
    except BaseException as waited:
        _stop(service, thread)
        if failure:  # the service's own error explains why the block failed waiting for it
            raise failure[0] from waited
        raise
    _stop(service, thread)
    if failure:
        raise failure[0]


def _stop(service: ConsumerService, thread: threading.Thread) -> None:
    service.stop()
    thread.join(15)
    assert not thread.is_alive(), "service did not stop within 15 s"


def run_until_caught_up(settings: LakesyncSettings, topic: str, timeout_s: float = 60.0) -> None:
    with running(settings):
        wait_caught_up(settings, topic, timeout_s)
