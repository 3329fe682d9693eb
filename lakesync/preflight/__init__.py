"""Preflight: the world a command needs, checked in seconds, before Spark starts or a topic exists.

`lakesync check-config --connect` prints every finding. `stream`, `consume`, `reconcile` and
`rebuild` run the checks they need first (`require_ready`) and stop at a failure with one line
naming the thing and the fix, and the exit code its cause calls for (lakesync/errors.py).
Kafka and PostgreSQL are asked directly; Delta tables are read from their transaction log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lakesync.config import LakesyncSettings, TableMapping
from lakesync.errors import LakesyncError
from lakesync.logs import get_logger
from lakesync.preflight.findings import Finding, Status
from lakesync.preflight.kafka import check_kafka
from lakesync.preflight.postgres import Access, check_postgres

__all__ = [
    "CHECK_ALL",
    "CONSUME",
    "REBUILD",
    "RECONCILE",
    "STREAM",
    "Finding",
    "Needs",
    "Status",
    "require_ready",
    "run_checks",
]

log = get_logger("lakesync.preflight")


@dataclass(frozen=True)
class Needs:
    """What a command touches, which decides the checks it runs."""

    kafka: bool
    sources: bool
    target: Access | None  # None: PostgreSQL is not touched (lag)


STREAM = Needs(kafka=True, sources=True, target="read")
CONSUME = Needs(kafka=True, sources=False, target="apply")  # consumer images do not mount the lake
RECONCILE = Needs(kafka=True, sources=True, target="read")
REBUILD = Needs(kafka=True, sources=True, target="rebuild")
CHECK_ALL = Needs(kafka=True, sources=True, target="apply")
LAG = Needs(kafka=True, sources=False, target=None)


def run_checks(settings: LakesyncSettings, tables: Sequence[TableMapping], needs: Needs) -> list[Finding]:
    """Every finding, in order: Kafka, PostgreSQL and targets, then each Delta source."""
    found: list[Finding] = []
    if needs.kafka:
        found += check_kafka(settings.kafka, [t.topic_name for t in tables])
    if needs.target is not None:
        found += check_postgres(settings, tables, needs.target)
    if needs.sources:
        found += _check_sources(tables)
    return found


def _check_sources(tables: Sequence[TableMapping]) -> list[Finding]:
    try:
        # Imported here: the consumer image (it never reads Delta) leaves the deltalake package out.
        from lakesync.preflight.delta_source import check_source
    except ImportError:
        reason = "not checked here: no deltalake package (run check-config --connect where the stream runs)"
        return [Finding(f"table {table.name}", "skip", reason) for table in tables]
    return [finding for table in tables for finding in check_source(table)]


def require_ready(settings: LakesyncSettings, tables: Sequence[TableMapping], needs: Needs) -> list[Finding]:
    """Run the checks; raise the first failure's error in one line, log warnings, return the findings."""
    found = run_checks(settings, tables, needs)
    for finding in found:
        log.debug("preflight", subject=finding.subject, status=finding.status, detail=finding.line)
    failures = [f for f in found if f.status == "fail"]
    if failures:  # one line, nothing else: warnings stay at DEBUG
        raise _error(failures)
    for finding in found:
        if finding.status == "warn":
            log.warning(finding.line)
    return found


def _error(failures: list[Finding]) -> LakesyncError:
    first = failures[0]
    more = len(failures) - 1
    suffix = f" (and {more} more problem(s): `lakesync check-config --connect` lists them)" if more else ""
    error_class = first.error or LakesyncError
    return error_class(first.line + suffix)
