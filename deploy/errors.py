"""Errors of the embedded services (`lakesync up`, the demo, the test session)."""

from __future__ import annotations

from lakesync.errors import LakesyncError


class EmbeddedServiceError(LakesyncError):
    """An embedded Kafka broker or PostgreSQL server failed to start, or died."""
