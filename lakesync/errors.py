"""Exceptions that cross package boundaries. Callers catch by meaning, never by message text."""

from __future__ import annotations


class LakesyncError(Exception):
    """Base class of every error lakesync raises on purpose."""


class ConfigError(LakesyncError):
    """The configuration is missing, unreadable or has a bad value; the message names the key."""


class SetupError(LakesyncError):
    """Something the setup step provides (jars, PostgreSQL binaries, Java) is missing."""


class EmbeddedServiceError(LakesyncError):
    """An embedded Kafka broker or PostgreSQL server failed to start, or died."""
