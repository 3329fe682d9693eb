"""The bases of every lakesync error, with the exit codes the CLI ends with (README, "Exit codes").

Each package keeps its own errors in its `errors.py`, subclassing the base that says what an
operator can do about them; the CLI reads the exit code from the class, so callers and the CLI
catch by meaning, never by message text.
"""

from __future__ import annotations


class LakesyncError(Exception):
    """Base class of every error lakesync raises on purpose."""

    exit_code = 1


class ConfigError(LakesyncError):
    """The configuration is missing, unreadable or has a bad value; the message names the key."""

    exit_code = 2


class RebuildRequiredError(LakesyncError):
    """The target or the stream cannot go on without `lakesync rebuild` (a schema change)."""

    exit_code = 3


class SetupError(LakesyncError):
    """Something the setup step provides (jars, PostgreSQL binaries, Java) is missing."""


class ServiceUnreachableError(LakesyncError):
    """Kafka or PostgreSQL did not answer at the configured address (worth retrying later)."""

    exit_code = 10


class AccessRefusedError(LakesyncError):
    """Kafka or PostgreSQL refused lakesync's credentials, or a right lakesync needs is missing."""

    exit_code = 11


class NotReadyError(LakesyncError):
    """A Delta source or PostgreSQL target is missing or does not fit its table mapping."""

    exit_code = 12
