"""Apply a prepared batch to PostgreSQL in one transaction, poison records isolated by bisection.

    schema check (own short transaction, cached per table and shape)
    BEGIN
      per group: SAVEPOINT; either COPY straight into the target (stream upserts of keys it
                 does not know, checked by one probe), or stage + COPY + upsert + delete
                 (statements.py); RELEASE
                 refused as poison (SQLSTATE 22/23, unconvertible value)? → bisect in savepoints
      dead-letter records sent and acknowledged
      consumed offsets upserted into lakesync.consumer_offsets
    COMMIT

Rows and offsets commit together, and every write is version-guarded, so a crash anywhere
re-applies at most what was not committed, and re-applying changes nothing: effectively once.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
from psycopg.adapt import Dumper
from psycopg_pool import ConnectionPool

from connectors import postgres_schema as schema
from lakesync.config import ConsumerSettings
from lakesync.logs import get_logger
from streaming.consumer import metrics, statements
from streaming.consumer.batch import PreparedBatch, Refused, StagedGroup, isolate_poison
from streaming.consumer.classify import Failure, classify
from streaming.consumer.dead_letters import DeadLetterRecord, DeadLetterSink, dead_letter_for
from streaming.consumer.decode import KEY, MESSAGE, ORDER, ROW, Change
from streaming.consumer.errors import UnconvertibleValueError

log = get_logger("lakesync.consumer.apply")

_COMMIT_TS, _IS_DELETE, _IS_REPAIR = -3, -2, -1


@dataclass
class TableStats:
    upserted: int = 0
    deleted: int = 0
    stale: int = 0
    dead_letters: int = 0
    commit_times: set[str] = field(default_factory=set)

    def add(self, other: TableStats) -> None:
        self.upserted += other.upserted
        self.deleted += other.deleted
        self.stale += other.stale
        self.dead_letters += other.dead_letters
        self.commit_times |= other.commit_times


@dataclass
class BatchResult:
    tables: dict[str, TableStats]
    committed_at: float
    duration_s: float
    bisect_attempts: int = 0

    def total(self, name: str) -> int:
        return sum(getattr(stats, name) for stats in self.tables.values())


class _RefuseContainer(Dumper):
    """Envelope values are JSON scalars; a list or object where a scalar belongs is poison."""

    def dump(self, obj: Any) -> bytes:
        raise UnconvertibleValueError(f"a {type(obj).__name__} value where the envelope contract allows only scalars")


class SchemaKeeper:
    """Makes each target fit the shapes it receives: create, add columns, or stop with the fix."""

    def __init__(self, settings: ConsumerSettings) -> None:
        self._settings = settings
        self._verified: set[tuple[schema.TableRef, Any]] = set()

    def ensure(self, conn: psycopg.Connection, group: StagedGroup) -> bool:
        """True when the target exists and takes the group's shape (False: deletes, no table yet)."""
        key = (group.table.ref, group.shape)
        if key in self._verified:
            return True
        with conn.transaction():
            schema.lock_ddl(conn)
            exists = self._sync(conn, group)
        if exists:
            self._verified.add(key)
        return exists

    def forget(self) -> None:
        self._verified.clear()

    def _sync(self, conn: psycopg.Connection, group: StagedGroup) -> bool:
        table, shape = group.table, group.shape
        existing = schema.describe_table(conn, table.ref)
        if existing is None and not group.has_upserts:
            # Deletes for a table never created: remember them, there is nothing to delete.
            schema.ensure_tombstone_table(conn, table.ref, shape.key_columns)
            return False
        plan = schema.plan_table(
            existing,
            shape.columns,
            table.key_columns,
            ref=table.ref,
            name=table.name,
            auto_create=self._settings.auto_create_tables,
            add_columns=self._settings.add_columns,
        )
        if plan.problems:
            raise schema.SchemaMismatchError(f"table {table.name}: " + "; ".join(plan.problems))
        if plan.create:
            schema.create_target_table(conn, table.ref, shape.columns, table.key_columns)
            log.info("target table created", table=table.name, target=str(table.ref), columns=len(shape.columns))
        if plan.add:
            schema.add_columns(conn, table.ref, plan.add)
            log.warning(
                "columns added to target", table=table.name, target=str(table.ref), columns=[c.name for c in plan.add]
            )
        schema.ensure_tombstone_table(conn, table.ref, shape.key_columns)
        return True


class DirectCopyPolicy:
    """When to try COPY straight into the target instead of staging and merging.

    Only for stream upserts (deletes and repairs need the guarded statements) whose values are
    all PostgreSQL text input already (bytea arrives as base64 and is decoded in the merge). The
    key probe costs little next to the merge it saves, but in a steady state of updates it only
    finds known keys, so after a table's probe finds one the next `PAUSE_BATCHES` skip it.
    """

    PAUSE_BATCHES = 20

    def __init__(self) -> None:
        self._paused: dict[Any, int] = {}

    def worth_trying(self, group: StagedGroup, part: Sequence[Change]) -> bool:
        left = self._paused.get(group.table.ref, 0)
        if left:
            self._paused[group.table.ref] = left - 1
            return False
        if any(c.pg_type == "bytea" for c in group.shape.columns):
            return False
        return not any(change[ROW][_IS_DELETE] or change[ROW][_IS_REPAIR] for change in part)

    def found_keys(self, group: StagedGroup) -> None:
        self._paused[group.table.ref] = self.PAUSE_BATCHES


class BatchApplier:
    """Writes prepared batches; raises transient errors for the caller's retry loop."""

    def __init__(
        self, pool: ConnectionPool, schemas: SchemaKeeper, dead_letters: DeadLetterSink, group_id: str
    ) -> None:
        self._pool = pool
        self._schemas = schemas
        self._dead_letters = dead_letters
        self._group_id = group_id
        self._stages = itertools.count()
        self._direct = DirectCopyPolicy()

    def apply(self, batch: PreparedBatch) -> BatchResult:
        """One transaction: all groups, dead letters acknowledged, offsets stored; then commit."""
        started = time.monotonic()
        tables: dict[str, TableStats] = {}
        attempts = 0
        with self._pool.connection() as conn:
            exists = [self._schemas.ensure(conn, group) for group in batch.groups]
            with conn.transaction():
                dead: list[DeadLetterRecord] = [
                    dead_letter_for(r.message, r.table.name, r.error) for r in batch.rejected
                ]
                for r in batch.rejected:
                    tables.setdefault(r.table.name, TableStats()).dead_letters += 1
                for group, target_exists in zip(batch.groups, exists, strict=True):
                    stats, poisoned, tries = self._apply_group(conn, group, target_exists)
                    attempts += tries
                    dead += poisoned
                    tables.setdefault(group.table.name, TableStats()).add(stats)
                self._dead_letters.send(dead)
                conn.execute(*statements.store_offsets(self._group_id, batch.next_offsets))
        return BatchResult(tables, time.time(), time.monotonic() - started, attempts)

    def _apply_group(
        self, conn: psycopg.Connection, group: StagedGroup, target_exists: bool
    ) -> tuple[TableStats, list[DeadLetterRecord], int]:
        def attempt(part: Sequence[Change]) -> TableStats | Refused:
            try:
                with conn.transaction():
                    return self._write(conn, group, part, target_exists)
            except Exception as exc:
                if classify(exc) is Failure.POISON:
                    return Refused(exc)
                raise

        found = isolate_poison(group.changes, attempt)
        stats = TableStats()
        for part in found.applied:
            stats.add(part)
        poisoned = [
            dead_letter_for(change[MESSAGE], group.table.name, error, change[ORDER][0])
            for change, error in found.poisoned
        ]
        stats.dead_letters += len(poisoned)
        if poisoned:
            log.warning(
                "poison records isolated", table=group.table.name, records=len(poisoned), attempts=found.attempts
            )
        return stats, poisoned, found.attempts

    def _write(
        self, conn: psycopg.Connection, group: StagedGroup, part: Sequence[Change], target_exists: bool
    ) -> TableStats:
        if target_exists and self._direct.worth_trying(group, part) and not self._keys_known(conn, group, part):
            try:
                with conn.transaction():
                    return self._copy_direct(conn, group, part)
            except psycopg.errors.UniqueViolation:
                # A key arrived between the probe and the COPY (e.g. a rebalance overlap): merge.
                self._direct.found_keys(group)
        return self._merge(conn, group, part, target_exists)

    def _keys_known(self, conn: psycopg.Connection, group: StagedGroup, part: Sequence[Change]) -> bool:
        keys = orjson.dumps([change[KEY] for change in part], default=str).decode()
        # The keys go in twice: once for the target, once for its tombstones.
        row = conn.execute(statements.any_key_known(group.table.ref, group.shape), (keys, keys)).fetchone()
        known = bool(row and row[0])
        if known:
            self._direct.found_keys(group)
        return known

    def _copy_direct(self, conn: psycopg.Connection, group: StagedGroup, part: Sequence[Change]) -> TableStats:
        """All keys are new: COPY the rows into the target itself, no staging and no merge."""
        with conn.cursor() as cursor:
            cursor.adapters.register_dumper(list, _RefuseContainer)
            cursor.adapters.register_dumper(dict, _RefuseContainer)
            with cursor.copy(statements.copy_target(group.table.ref, group.shape)) as copy:
                write = copy.write_row
                try:
                    for change in part:
                        write(change[ROW][:_IS_DELETE])  # values, version, commit ts
                except (psycopg.DataError, psycopg.ProgrammingError, TypeError, ValueError) as exc:
                    raise UnconvertibleValueError(f"cannot write a value to the target table: {exc}") from exc
        stats = TableStats(upserted=len(part))
        stats.commit_times = {change[ROW][_COMMIT_TS] for change in part if change[ROW][_COMMIT_TS] is not None}
        return stats

    def _merge(
        self, conn: psycopg.Connection, group: StagedGroup, part: Sequence[Change], target_exists: bool
    ) -> TableStats:
        """Stage the rows, then one version-guarded upsert and one guarded delete."""
        stage = f"lakesync_stage_{next(self._stages)}"
        ref, shape = group.table.ref, group.shape
        conn.execute(statements.create_stage(stage, shape))
        counts = self._copy(conn, stage, part)
        stats = TableStats()
        upserts = len(part) - counts["delete"]
        if counts["stream"]:
            stats.upserted += conn.execute(statements.upsert(ref, stage, shape, repair=False)).rowcount
        if counts["repair"]:
            stats.upserted += conn.execute(statements.upsert(ref, stage, shape, repair=True)).rowcount
        stats.stale = upserts - stats.upserted
        if counts["delete"]:
            row = conn.execute(statements.delete(ref, stage, shape, target_exists=target_exists)).fetchone()
            removed, marked = row if row else (0, 0)
            stats.deleted = int(removed)
            stats.stale += max(counts["delete"] - max(int(removed), int(marked)), 0)
        stats.commit_times = {change[ROW][_COMMIT_TS] for change in part if change[ROW][_COMMIT_TS] is not None}
        return stats

    def _copy(self, conn: psycopg.Connection, stage: str, part: Sequence[Change]) -> dict[str, int]:
        deletes = repairs = 0
        with conn.cursor() as cursor:
            cursor.adapters.register_dumper(list, _RefuseContainer)
            cursor.adapters.register_dumper(dict, _RefuseContainer)
            with cursor.copy(statements.copy_stage(stage)) as copy:
                write = copy.write_row
                try:
                    for change in part:
                        row = change[ROW]
                        write(row)
                        if row[_IS_DELETE]:
                            deletes += 1
                        elif row[_IS_REPAIR]:
                            repairs += 1
                except (psycopg.DataError, psycopg.ProgrammingError, TypeError, ValueError) as exc:
                    raise UnconvertibleValueError(f"cannot write a value to the staging table: {exc}") from exc
        return {"delete": deletes, "repair": repairs, "stream": len(part) - deletes - repairs}


def observe(result: BatchResult, now: float | None = None) -> None:
    """Count the batch in the metrics, latency from each Delta commit to our commit included."""
    committed = result.committed_at if now is None else now
    metrics.BATCHES.inc()
    metrics.BATCH_APPLY_SECONDS.observe(result.duration_s)
    for table, stats in result.tables.items():
        metrics.ROWS_APPLIED.labels(table, "upsert").inc(stats.upserted)
        metrics.ROWS_APPLIED.labels(table, "delete").inc(stats.deleted)
        metrics.ROWS_STALE.labels(table).inc(stats.stale)
        metrics.DEAD_LETTERS.labels(table).inc(stats.dead_letters)
        latency = metrics.END_TO_END_LATENCY.labels(table)
        for commit_ts in stats.commit_times:
            try:
                instant = dt.datetime.fromisoformat(commit_ts)
            except (TypeError, ValueError):
                continue
            if instant.tzinfo is None:
                instant = instant.replace(tzinfo=dt.UTC)
            latency.observe(max(committed - instant.timestamp(), 0.0))
