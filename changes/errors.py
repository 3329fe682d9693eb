"""Errors of the pure change logic."""

from __future__ import annotations

from lakesync.errors import LakesyncError


class EnvelopeError(LakesyncError):
    """A Kafka message is not a valid lakesync envelope (undecodable, wrong version, bad value)."""
