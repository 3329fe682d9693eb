"""Errors of the streaming job (`lakesync stream`), each with the one line the user sees."""

from __future__ import annotations

from lakesync.errors import LakesyncError, NotReadyError, RebuildRequiredError


class PublishError(LakesyncError):
    """Kafka did not acknowledge every message of a batch."""


class TableBusyError(LakesyncError):
    """Another lakesync process holds the table's stream state (e.g. a running stream job)."""


class SourceError(NotReadyError):
    """A source table is missing or cannot be streamed (e.g. change data feed is off)."""


class SchemaChangeError(RebuildRequiredError):
    """The source schema changed in a way lakesync cannot carry to PostgreSQL."""


class StreamFailedError(LakesyncError):
    """A table's streaming query stopped with an error that is not a schema change."""


class TableLockLostError(LakesyncError):
    """The table lock's PostgreSQL session ended while the job held it; another may hold it now."""
