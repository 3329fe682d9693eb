"""Dead-letter records: what could not be synced, with why, sent to the dead-letter topic.

Both sides quarantine here: the streaming job (rows that cannot be synced: null key, a value the
target cannot hold) and the consumer (poison records: undecodable, or refused by PostgreSQL with
a data or constraint error). The original key and value are kept byte for byte; the headers say
what went wrong and where the record came from, so it can be fixed and replayed.
"""

from __future__ import annotations

from dataclasses import dataclass

HEADER_STAGE = "lakesync-dlq-stage"  # "stream" (quarantined before Kafka) or "consume"
HEADER_ERROR_CLASS = "lakesync-dlq-error-class"  # e.g. "EnvelopeError", "NotNullViolation", "null_key"
HEADER_SQLSTATE = "lakesync-dlq-sqlstate"  # PostgreSQL SQLSTATE when PostgreSQL refused the row
HEADER_MESSAGE = "lakesync-dlq-message"
HEADER_TABLE = "lakesync-dlq-table"  # the table mapping's name
HEADER_TOPIC = "lakesync-dlq-original-topic"
HEADER_PARTITION = "lakesync-dlq-original-partition"
HEADER_OFFSET = "lakesync-dlq-original-offset"
HEADER_VERSION = "lakesync-dlq-source-version"  # Delta commit version, for stream-stage records

MAX_MESSAGE_CHARS = 2000


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Why one record was set aside and where it came from."""

    stage: str
    error_class: str
    message: str
    table: str | None = None
    sqlstate: str | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    source_version: int | None = None

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers for this record; absent facts are left out rather than sent empty."""
        fields = [
            (HEADER_STAGE, self.stage),
            (HEADER_ERROR_CLASS, self.error_class),
            (HEADER_MESSAGE, self.message[:MAX_MESSAGE_CHARS]),
            (HEADER_TABLE, self.table),
            (HEADER_SQLSTATE, self.sqlstate),
            (HEADER_TOPIC, self.topic),
            (HEADER_PARTITION, self.partition),
            (HEADER_OFFSET, self.offset),
            (HEADER_VERSION, self.source_version),
        ]
        return [(name, str(value).encode()) for name, value in fields if value is not None]
