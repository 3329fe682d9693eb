"""Apply one partition's batch to PostgreSQL in one transaction: fenced, poison isolated by bisection.

    schema check (own short transaction, cached per table and shape)
    BEGIN
      lock the partition's row of lakesync.consumer_offsets (SELECT ... FOR UPDATE) and check the
      batch's ownership: the claim token it was read under, and the next offset it starts from
      (compare-and-set); another owner or another offset → roll back, BatchFencedError
      per group: SAVEPOINT; either COPY straight into the target (stream upserts of keys it
                 does not know, checked by one probe), or stage + COPY + upsert + delete
                 (statements.py); RELEASE
                 refused as poison (SQLSTATE 21/22/23)? → bisect in savepoints
      dead-letter records sent and acknowledged
      the partition's next offset advanced
    COMMIT

Rows and offsets commit together and every write is version-guarded, so a crash anywhere
re-applies at most what was not committed, and re-applying changes nothing. The row lock is
taken first: two writers of one partition (a zombie that lost it and its new owner) are
serialized, and the second finds the other's claim or offset and drops its batch. The same lock
closes the gap between the fast path's key probe and its COPY. Rows are written as CSV made by
Arrow's writer (one C++ call per part), never formatted value by value in Python.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from connectors import postgres_schema as schema
from connectors.errors import SchemaMismatchError
from lakesync.config import ConsumerSettings
from lakesync.logs import get_logger
from streaming.consumer import metrics, statements
from streaming.consumer.batch import (
    COMMIT_TS,
    IS_DELETE,
    IS_REPAIR,
    MESSAGE_INDEX,
    VERSION,
    PartitionBatch,
    Refused,
    StagedGroup,
    isolate_poison,
)
from streaming.consumer.classify import Failure, classify
from streaming.consumer.dead_letters import DeadLetterRecord, DeadLetterSink, dead_letter_for
from streaming.consumer.errors import BatchFencedError

log = get_logger("lakesync.consumer.apply")

# PostgreSQL's CSV: NULL is an unquoted empty field, an empty string is "" (Arrow quotes strings).
_CSV = pa_csv.WriteOptions(include_header=False, quoting_style="needed")


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
    table: str
    stats: TableStats
    committed_at: float
    duration_s: float
    bisect_attempts: int = 0


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
            raise SchemaMismatchError(f"table {table.name}: " + "; ".join(plan.problems))
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
        self._lock = threading.Lock()  # apply lanes share one policy

    def worth_trying(self, group: StagedGroup, part: pa.Table) -> bool:
        with self._lock:
            left = self._paused.get(group.table.ref, 0)
            if left:
                self._paused[group.table.ref] = left - 1
                return False
        if any(c.pg_type == "bytea" for c in group.shape.columns):
            return False
        return not pc.any(pc.or_(part[IS_DELETE], part[IS_REPAIR])).as_py()

    def found_keys(self, group: StagedGroup) -> None:
        with self._lock:
            self._paused[group.table.ref] = self.PAUSE_BATCHES


class BatchApplier:
    """Writes partition batches; raises transient errors for the caller's retry loop."""

    def __init__(self, schemas: SchemaKeeper, dead_letters: DeadLetterSink, group_id: str) -> None:
        self._schemas = schemas
        self._dead_letters = dead_letters
        self._group_id = group_id
        self._direct = DirectCopyPolicy()

    def apply(self, conn: psycopg.Connection, batch: PartitionBatch) -> BatchResult:
        """One transaction: ownership checked, all groups, dead letters acknowledged, offset advanced."""
        started = time.monotonic()
        exists = [self._schemas.ensure(conn, group) for group in batch.groups]
        stats = TableStats(dead_letters=len(batch.rejected))
        attempts = 0
        with conn.transaction():
            self._check_ownership(conn, batch)
            dead = [dead_letter_for(r.message, r.table.name, r.error) for r in batch.rejected]
            for group, target_exists in zip(batch.groups, exists, strict=True):
                group_stats, poisoned, tries = self._apply_group(conn, batch, group, target_exists)
                attempts += tries
                dead += poisoned
                stats.add(group_stats)
            self._dead_letters.send(dead)
            conn.execute(*statements.advance_offset(self._group_id, batch.tp, batch.next_offset))
        return BatchResult(batch.table.name, stats, time.time(), time.monotonic() - started, attempts)

    def _check_ownership(self, conn: psycopg.Connection, batch: PartitionBatch) -> None:
        """Lock the partition's offsets row; the batch goes on only under its own claim and offset."""
        ownership = batch.ownership
        assert ownership is not None, "a batch is handed over with the claim it was read under"
        row = conn.execute(*statements.lock_offset(self._group_id, batch.tp)).fetchone()
        if row is None or row[1] != ownership.token:
            owner = row[1] if row else None
            raise BatchFencedError(f"{batch.describe_offsets()}: the partition was claimed since ({owner})")
        if row[0] != ownership.expected_offset:
            raise BatchFencedError(
                f"{batch.describe_offsets()}: PostgreSQL holds next offset {row[0]}, "
                f"the batch follows {ownership.expected_offset}"
            )

    def _apply_group(
        self, conn: psycopg.Connection, batch: PartitionBatch, group: StagedGroup, target_exists: bool
    ) -> tuple[TableStats, list[DeadLetterRecord], int]:
        def attempt(span: Sequence[int]) -> TableStats | Refused:
            part = group.rows.slice(span[0], len(span))
            try:
                with conn.transaction():
                    return self._write(conn, group, part, target_exists)
            except Exception as exc:
                if classify(exc) is Failure.POISON:
                    return Refused(exc)
                raise

        found = isolate_poison(range(len(group)), attempt)
        stats = TableStats()
        for part in found.applied:
            stats.add(part)
        poisoned = [self._dead_letter(batch, group, row, error) for row, error in found.poisoned]
        stats.dead_letters += len(poisoned)
        if poisoned:
            log.warning(
                "poison records isolated", table=group.table.name, records=len(poisoned), attempts=found.attempts
            )
        return stats, poisoned, found.attempts

    def _dead_letter(
        self, batch: PartitionBatch, group: StagedGroup, row: int, error: BaseException
    ) -> DeadLetterRecord:
        message = batch.messages[group.rows[MESSAGE_INDEX][row].as_py()]
        return dead_letter_for(message, group.table.name, error, group.rows[VERSION][row].as_py())

    def _write(self, conn: psycopg.Connection, group: StagedGroup, part: pa.Table, target_exists: bool) -> TableStats:
        if target_exists and self._direct.worth_trying(group, part) and not self._keys_known(conn, group, part):
            try:
                with conn.transaction():
                    return self._copy_direct(conn, group, part)
            except psycopg.errors.UniqueViolation:
                # Two staged rows PostgreSQL sees as one key (e.g. numeric "1.0" and "1.00"): merge.
                self._direct.found_keys(group)
        return self._merge(conn, group, part, target_exists)

    def _keys_known(self, conn: psycopg.Connection, group: StagedGroup, part: pa.Table) -> bool:
        columns = [part[c.name].to_pylist() for c in group.shape.key_columns]
        keys = orjson.dumps(list(zip(*columns, strict=True))).decode()
        # The keys go in twice: once for the target, once for its tombstones; then the oldest version.
        oldest = pc.min(part[VERSION]).as_py()
        row = conn.execute(statements.any_key_known(group.table.ref, group.shape), (keys, keys, oldest)).fetchone()
        known = bool(row and row[0])
        if known:
            self._direct.found_keys(group)
        return known

    def _copy_direct(self, conn: psycopg.Connection, group: StagedGroup, part: pa.Table) -> TableStats:
        """All keys are new: COPY the rows into the target itself, no staging and no merge."""
        names = [c.name for c in group.shape.columns] + [VERSION, COMMIT_TS]
        _copy(conn, statements.copy_target(group.table.ref, group.shape), part.select(names))
        return TableStats(upserted=part.num_rows, commit_times=_commit_times(part))

    def _merge(self, conn: psycopg.Connection, group: StagedGroup, part: pa.Table, target_exists: bool) -> TableStats:
        """Stage the rows, then one version-guarded upsert per kind and one guarded delete."""
        ref, shape = group.table.ref, group.shape
        stage = statements.stage_name(shape)
        conn.execute(statements.create_stage(stage, shape))
        conn.execute(statements.empty_stage(stage))
        _copy(conn, statements.copy_stage(stage), part.drop_columns([MESSAGE_INDEX]))
        deletes = _count(part[IS_DELETE])
        repairs = _count(pc.and_not(part[IS_REPAIR], part[IS_DELETE]))
        stats = TableStats(commit_times=_commit_times(part))
        if part.num_rows - deletes - repairs:
            stats.upserted += conn.execute(statements.upsert(ref, stage, shape, repair=False)).rowcount
        if repairs:
            stats.upserted += conn.execute(statements.upsert(ref, stage, shape, repair=True)).rowcount
        stats.stale = part.num_rows - deletes - stats.upserted
        if deletes:
            row = conn.execute(statements.delete(ref, stage, shape, target_exists=target_exists)).fetchone()
            removed, marked = row if row else (0, 0)
            stats.deleted = int(removed)
            stats.stale += max(deletes - max(int(removed), int(marked)), 0)
        return stats


def _copy(conn: psycopg.Connection, statement: Any, rows: pa.Table) -> None:
    """COPY `rows` as CSV (Arrow writes it; psycopg sends it as it is)."""
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(rows, sink, _CSV)
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        copy.write(memoryview(sink.getvalue()))


def _count(flags: pa.ChunkedArray | pa.Array) -> int:
    return int(pc.sum(flags).as_py() or 0)


def _commit_times(part: pa.Table) -> set[str]:
    return {t for t in pc.unique(part[COMMIT_TS]).to_pylist() if t is not None}


def observe(result: BatchResult, now: float | None = None) -> None:
    """Count the batch in the metrics, latency from each Delta commit to our commit included."""
    committed = result.committed_at if now is None else now
    stats, table = result.stats, result.table
    metrics.BATCHES.inc()
    metrics.BATCH_APPLY_SECONDS.observe(result.duration_s)
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
