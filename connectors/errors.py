"""Errors of the connectors to Delta (through Spark), Kafka and PostgreSQL."""

from __future__ import annotations

from lakesync.errors import LakesyncError, NotReadyError, RebuildRequiredError, ServiceUnreachableError


class PostgresUnavailableError(ServiceUnreachableError):
    """PostgreSQL cannot be reached (at start-up, or for longer than the retry deadline)."""


class TopicError(LakesyncError):
    """A topic lakesync needs could not be created or described."""


class SchemaMismatchError(RebuildRequiredError):
    """The target table cannot hold what the envelopes carry without a rebuild (types, key)."""


class UnsupportedTypeError(NotReadyError):
    """A source column has a type lakesync cannot store in PostgreSQL without loss."""


class ConsumerBehindError(LakesyncError):
    """The consumer group did not apply the table's topic up to the wanted offsets in time."""
