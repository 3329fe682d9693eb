"""Poison records → the dead-letter topic, original key and value kept byte for byte.

Records are sent and acknowledged *before* the batch's transaction commits: a crash in between
sends them again on replay (the dead-letter topic is at-least-once), but never loses one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaError, Producer

from changes.dead_letter import DeadLetter
from connectors.kafka import producer_config
from connectors.kafka_messages import produced_headers
from lakesync.config import KafkaSettings
from streaming.consumer.classify import sqlstate_of
from streaming.consumer.decode import Message


@dataclass(frozen=True)
class DeadLetterRecord:
    message: Message
    letter: DeadLetter


def dead_letter_for(
    message: Message, table: str, error: BaseException, source_version: int | None = None
) -> DeadLetterRecord:
    """The DLQ record of one refused message: error class, SQLSTATE, message, where it came from."""
    letter = DeadLetter(
        stage="consume",
        error_class=type(error).__name__,
        message=str(error).strip() or type(error).__name__,
        table=table,
        sqlstate=sqlstate_of(error),
        topic=message.topic(),
        partition=message.partition(),
        offset=message.offset(),
        source_version=source_version,
    )
    return DeadLetterRecord(message, letter)


class DeadLetterSink:
    """An idempotent producer to the dead-letter topic; `send` returns once Kafka acknowledged."""

    def __init__(self, settings: KafkaSettings, *, timeout_s: float = 30.0) -> None:
        self.topic = settings.dead_letter_topic
        self._settings = settings
        self._timeout_s = timeout_s
        self._producer: Producer | None = None

    def send(self, records: Sequence[DeadLetterRecord]) -> None:
        """Produce and wait for every acknowledgement; DeadLetterDeliveryError if one is missing."""
        from streaming.consumer.errors import DeadLetterDeliveryError

        if not records:
            return
        failures: list[KafkaError] = []

        def delivered(error: KafkaError | None, _message: object) -> None:
            if error is not None:
                failures.append(error)

        producer = self._ensure_producer()
        for record in records:
            original = record.message
            producer.produce(
                self.topic,
                key=original.key(),
                value=original.value(),
                headers=produced_headers(record.letter.headers() + list(original.headers() or ())),
                on_delivery=delivered,
            )
        remaining = producer.flush(self._timeout_s)
        if remaining or failures:
            detail = (
                failures[0].str() if failures else f"{remaining} record(s) unacknowledged after {self._timeout_s:.0f} s"
            )
            raise DeadLetterDeliveryError(f"dead-letter topic {self.topic!r}: {detail}")

    def close(self, timeout_s: float = 2.0) -> None:
        if self._producer is not None:
            self._producer.flush(timeout_s)
            self._producer = None

    def _ensure_producer(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(producer_config(self._settings, **{"linger.ms": "5"}))
        return self._producer
