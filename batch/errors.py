"""Errors of the batch commands (`lakesync reconcile`, `lakesync rebuild`)."""

from __future__ import annotations

from lakesync.errors import LakesyncError


class VersionError(LakesyncError):
    """The requested Delta version does not exist (any more) for the table."""


class RebuildError(LakesyncError):
    """The rebuild could not complete; the live table was left as it was."""
