"""What a preflight check found: plain data, printed by `check-config --connect`, raised by start-up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lakesync.errors import LakesyncError

# ok: as needed; warn: works, but worth knowing; skip: cannot be checked without Spark; fail: stops.
Status = Literal["ok", "warn", "skip", "fail"]


@dataclass(frozen=True)
class Finding:
    """One checked thing: what it is, how it stands, and what to do when it is not right."""

    subject: str  # "kafka", "postgres", "table people", ...
    status: Status
    detail: str
    fix: str = ""
    # For failures: the error class, and so the CLI's exit code (lakesync/errors.py).
    error: type[LakesyncError] | None = None

    @property
    def line(self) -> str:
        """`subject: detail; fix` — the one line an operator reads."""
        return f"{self.subject}: {self.detail}" + (f"; {self.fix}" if self.fix else "")


def ok(subject: str, detail: str) -> Finding:
    return Finding(subject, "ok", detail)


def warn(subject: str, detail: str, fix: str = "") -> Finding:
    return Finding(subject, "warn", detail, fix)


def skip(subject: str, detail: str) -> Finding:
    return Finding(subject, "skip", detail)


def fail(subject: str, detail: str, fix: str, error: type[LakesyncError]) -> Finding:
    return Finding(subject, "fail", detail, fix, error)
