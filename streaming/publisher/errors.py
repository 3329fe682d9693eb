"""Errors of the streaming job (`lakesync stream`), each with the one line the user sees."""

from __future__ import annotations

from lakesync.errors import LakesyncError


class PublishError(LakesyncError):
    """Kafka did not acknowledge every message of a batch."""
