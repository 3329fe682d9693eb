"""Errors of the streaming job (`lakesync stream`), each with the one line the user sees."""

from __future__ import annotations

from lakesync.errors import LakesyncError


class PublishError(LakesyncError):
    """Kafka did not acknowledge every message of a batch."""


class TableBusyError(LakesyncError):
    """Another lakesync process holds the table's stream state (e.g. a running stream job)."""


class TableLockLostError(LakesyncError):
    """The table lock's PostgreSQL session ended while the job held it; another may hold it now."""
