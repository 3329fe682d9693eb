"""What the Kafka thread reads ahead while a lane is busy is bounded like a batch (no servers)."""

from __future__ import annotations

from lakesync.config import ConsumerSettings, LakesyncSettings, TableMapping
from streaming.consumer.service import ConsumerService

from .test_decode import FakeMessage


class _Polled(FakeMessage):
    """A consumed message as confluent_kafka gives it: len() is the value's length, no error."""

    def __len__(self) -> int:
        return len(self.v or b"")

    def error(self) -> None:
        return None


class _OneAtATime:
    def __init__(self, messages: list[_Polled]) -> None:
        self._messages = messages

    def poll(self, _timeout_s: float) -> _Polled | None:
        return self._messages.pop(0) if self._messages else None


def _service(max_messages: int, max_bytes: int) -> ConsumerService:
    table = TableMapping(name="people", source_path="people", target_table="people", key_columns=["id"])
    consumer = ConsumerSettings(batch_max_messages=max_messages, batch_max_bytes=max_bytes, group_instance_id="")
    return ConsumerService(LakesyncSettings(tables=[table], consumer=consumer))


def _read_ahead(service: ConsumerService, offered: int, value_bytes: int) -> int:
    messages = [_Polled(b"k", b"x" * value_bytes, [], o=i) for i in range(offered)]
    service._consumer = _OneAtATime(messages)  # type: ignore[assignment]  # only poll() is used
    while service._may_read_ahead() and len(service._carried) < offered:
        service._poll_ahead()
    return len(service._carried)


def test_wide_rows_stop_the_read_ahead_at_the_batch_byte_bound() -> None:
    # 300 kB values, 1 MiB batches: the fourth message reaches the bound, far below 10,000 messages.
    assert _read_ahead(_service(10_000, 1 << 20), offered=50, value_bytes=300_000) == 4


def test_narrow_rows_stop_the_read_ahead_at_the_batch_message_bound() -> None:
    assert _read_ahead(_service(5, 1 << 20), offered=50, value_bytes=100) == 5


def test_the_next_batch_starts_with_what_was_read_ahead_and_its_bytes() -> None:
    service = _service(10_000, 1 << 20)
    _read_ahead(service, offered=2, value_bytes=300_000)
    assert service._carried_size == 600_000
    service._set_carried([])
    assert (service._carried, service._carried_size) == ([], 0)
