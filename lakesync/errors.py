"""Exceptions that cross package boundaries. Callers catch by meaning, never by message text.

Each class an operator can meet carries the exit code the CLI ends with (README, "Exit codes").
"""

from __future__ import annotations


class LakesyncError(Exception):
    """Base class of every error lakesync raises on purpose."""

    exit_code = 1


class ConfigError(LakesyncError):
    """The configuration is missing, unreadable or has a bad value; the message names the key."""

    exit_code = 2


class SetupError(LakesyncError):
    """Something the setup step provides (jars, PostgreSQL binaries, Java) is missing."""


class EmbeddedServiceError(LakesyncError):
    """An embedded Kafka broker or PostgreSQL server failed to start, or died."""


class ServiceUnreachableError(LakesyncError):
    """Kafka or PostgreSQL did not answer at the configured address (worth retrying later)."""

    exit_code = 10


class AccessRefusedError(LakesyncError):
    """Kafka or PostgreSQL refused lakesync's credentials, or a right lakesync needs is missing."""

    exit_code = 11


class NotReadyError(LakesyncError):
    """A Delta source or PostgreSQL target is missing or does not fit its table mapping."""

    exit_code = 12
