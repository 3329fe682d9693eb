"""Reading the dead-letter topic, and replaying chosen records to their source topic (`lakesync dead-letters`).

A record the consumer set aside (stage `consume`) keeps its original key, value and headers; the
`lakesync-dlq-*` headers say why and where it came from (changes/dead_letter.py). Once the cause
is fixed — a constraint relaxed, a mapping corrected, the producer of malformed envelopes stopped
— replaying re-produces the original record to its original topic, where the consumer applies it
like any other: the version guard makes a record that newer changes superseded meanwhile a no-op,
so a replay can never move a row back in time. Records quarantined by the streaming job or a
rebuild (stages `stream`, `rebuild`) never reached a change topic and are fixed in Delta instead.

Reading uses an assign-only consumer up to the end offsets taken when it starts, and commits
nothing; it never joins a group.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import cast

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, Producer, TopicPartition

from changes import dead_letter as dlq
from connectors.kafka import producer_config
from connectors.kafka_messages import consumed_headers, position
from lakesync.config import KafkaSettings
from streaming.consumer.errors import DeadLetterReplayError

HEADER_REPLAYED_FROM = "lakesync-dlq-replayed-from"  # `<dead-letter partition>:<offset>` on a replayed record
_DLQ_PREFIX = "lakesync-dlq-"


@dataclass(frozen=True)
class StoredDeadLetter:
    """One record of the dead-letter topic: where it sits, why it is there, and the original record."""

    partition: int
    offset: int
    why: dict[str, str]
    key: bytes | None
    value: bytes | None
    original_headers: list[tuple[str, bytes]]

    @property
    def id(self) -> str:
        """`<partition>:<offset>` in the dead-letter topic: how `replay` names a record."""
        return f"{self.partition}:{self.offset}"

    def get(self, header: str) -> str | None:
        return self.why.get(header)

    @property
    def replayable(self) -> bool:
        return self.get(dlq.HEADER_STAGE) == "consume" and self.get(dlq.HEADER_TOPIC) is not None

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "stage": self.get(dlq.HEADER_STAGE),
            "table": self.get(dlq.HEADER_TABLE),
            "error_class": self.get(dlq.HEADER_ERROR_CLASS),
            "sqlstate": self.get(dlq.HEADER_SQLSTATE),
            "message": self.get(dlq.HEADER_MESSAGE),
            "topic": self.get(dlq.HEADER_TOPIC),
            "partition": _int(self.get(dlq.HEADER_PARTITION)),
            "offset": _int(self.get(dlq.HEADER_OFFSET)),
            "source_version": _int(self.get(dlq.HEADER_VERSION)),
            "replayed_from": self.get(HEADER_REPLAYED_FROM),
        }


def read_dead_letters(
    settings: KafkaSettings, *, table: str | None = None, timeout_s: float = 10.0
) -> list[StoredDeadLetter]:
    """Every record now on the dead-letter topic (of `table` only, if given), oldest first per partition."""
    reader = Consumer(
        {
            **settings.client_config(),
            "group.id": "lakesync-dead-letters",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
        }
    )
    try:
        ends = _end_offsets(reader, settings.dead_letter_topic, timeout_s)
        found = [_stored(m) for m in _read_until(reader, settings.dead_letter_topic, ends, timeout_s)]
    except KafkaException as exc:
        raise DeadLetterReplayError(f"cannot read {settings.dead_letter_topic!r}: {exc.args[0].str()}") from None
    finally:
        reader.close()
    return [letter for letter in found if table is None or letter.get(dlq.HEADER_TABLE) == table]


def choose(letters: Sequence[StoredDeadLetter], ids: Iterable[str]) -> list[StoredDeadLetter]:
    """The letters named by `ids` (`partition:offset`); DeadLetterReplayError for an unknown one."""
    by_id = {letter.id: letter for letter in letters}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise DeadLetterReplayError(f"no dead letter {', '.join(missing)} on the topic (ids are partition:offset)")
    return [by_id[i] for i in ids]


def replay(settings: KafkaSettings, letters: Sequence[StoredDeadLetter], *, timeout_s: float = 30.0) -> int:
    """Re-produce each letter's original record to its original topic; returns how many were acknowledged."""
    refused = [letter.id for letter in letters if not letter.replayable]
    if refused:
        raise DeadLetterReplayError(
            f"{', '.join(refused)}: only records the consumer set aside (stage consume) go back to a change "
            "topic; fix stream and rebuild records in the source table"
        )
    failures: list[str] = []

    def delivered(error: object, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    producer = Producer(producer_config(settings))
    for letter in letters:
        producer.produce(
            cast(str, letter.get(dlq.HEADER_TOPIC)),  # a replayable letter names its topic (checked above)
            key=letter.key,
            value=letter.value,
            headers=[*letter.original_headers, (HEADER_REPLAYED_FROM, letter.id.encode())],
            on_delivery=delivered,
        )
    left = producer.flush(timeout_s)
    if left or failures:
        raise DeadLetterReplayError(
            f"replay not acknowledged: {failures[0] if failures else f'{left} record(s) pending'}"
        )
    return len(letters)


def _end_offsets(reader: Consumer, topic: str, timeout_s: float) -> dict[int, tuple[int, int]]:
    metadata = reader.list_topics(topic, timeout=timeout_s).topics.get(topic)
    if metadata is None or metadata.error is not None:
        return {}
    return {p: reader.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s) for p in metadata.partitions}


def _read_until(reader: Consumer, topic: str, ends: dict[int, tuple[int, int]], timeout_s: float) -> list[Message]:
    """Messages from each partition's start up to the end offset it had when reading began."""
    pending = {p: high for p, (low, high) in ends.items() if high > low}
    if not pending:
        return []
    reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in pending])
    messages: list[Message] = []
    while pending:
        batch = reader.consume(500, timeout_s)
        if not batch:
            raise DeadLetterReplayError(f"{topic!r}: no record within {timeout_s:.0f} s before its end offsets")
        for message in batch:
            if message.error() is not None:
                continue
            _topic, partition, offset = position(message)
            if partition in pending and offset < pending[partition]:
                messages.append(message)
            if partition in pending and offset >= pending[partition] - 1:
                del pending[partition]
    return messages


def _stored(message: Message) -> StoredDeadLetter:
    headers = list(consumed_headers(message) or [])
    why = {k: v.decode(errors="replace") for k, v in headers if k.startswith(_DLQ_PREFIX)}
    original = [(k, v) for k, v in headers if not k.startswith(_DLQ_PREFIX)]
    _topic, partition, offset = position(message)
    return StoredDeadLetter(partition, offset, why, message.key(), message.value(), original)


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.lstrip("-").isdigit() else None


def render(letters: Sequence[StoredDeadLetter]) -> object:
    """A rich table of the letters, one line each (the message cut short)."""
    from rich.table import Table

    view = Table(title=f"{len(letters)} dead letter(s)")
    for column in ("id", "stage", "table", "error class", "SQLSTATE", "source", "version", "message"):
        view.add_column(column)
    for letter in letters:
        row = letter.as_json()
        source = f"{row['topic']}[{row['partition']}]@{row['offset']}" if row["topic"] else ""
        message = str(row["message"] or "")
        view.add_row(
            letter.id,
            str(row["stage"] or ""),
            str(row["table"] or ""),
            str(row["error_class"] or ""),
            str(row["sqlstate"] or ""),
            source,
            "" if row["source_version"] is None else str(row["source_version"]),
            message if len(message) <= 80 else message[:77] + "...",
        )
    return view
