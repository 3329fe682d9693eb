"""Errors of the lag observability (`lakesync lag`, the lag monitor)."""

from __future__ import annotations

from lakesync.errors import LakesyncError


class OffsetsUnavailableError(LakesyncError):
    """Kafka did not answer the offset or group requests in time."""
