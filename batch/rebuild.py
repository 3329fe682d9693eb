"""`lakesync rebuild`: reload a target table from the source at one version, atomically.

1. Pin the source at version V (default: latest) and take the table's stream lock (a running
   `lakesync stream` for the table must be stopped first).
2. Create a shadow table beside the live one (no key yet) and load it with parallel COPY from
   the Spark partitions, at most `postgres.max_spark_connections` connections at once.
   Rows the mapping quarantines go to the dead-letter topic (stage `rebuild`), counted.
3. Add the primary key (an index build is faster than maintaining it during the load) and
   ANALYZE.
4. Swap shadow and live in one transaction (two renames): readers see the old table or the new
   one, never a partial one. The old table is dropped after the swap has committed.
   The stream's state (streaming/publisher/state_store.py) is loaded the same way into a shadow
   state table with V's rows, swapped in by the same transaction, which also sets the table's
   stream progress to V (resume there, state seeded) and the target's floor to V
   (`lakesync.target_floors`): events at or before V that the consumer has not applied yet — an
   upsert of a key deleted before V, say — never apply over the rebuilt table.
5. The files beside the checkpoint follow (state_dir.py): V's source schema is recorded and the
   checkpoint removed. The stream resumes right after V, so nothing is skipped and nothing is
   applied twice.

Interrupted (error, Ctrl-C) before the swap: the shadow is dropped and the live table is
untouched. Killed outright: the next run drops the leftover shadow before it starts.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from batch.errors import RebuildError
from batch.pinned_source import PinnedSource, pin
from batch.spark_progress import spark_progress
from connectors.kafka import DEAD_LETTER_TOPIC_CONFIG, ensure_topics, producer_config
from connectors.postgres_copy import COPY_COUNT_SCHEMA, CopyWriter, csv_line
from connectors.postgres_schema import (
    COMMIT_TS_COLUMN,
    VERSION_COLUMN,
    TableRef,
    create_target_table,
    ensure_floors,
    lock_ddl,
    set_floor,
)
from connectors.spark_types import target_columns
from lakesync.config import LakesyncSettings, TableMapping
from lakesync.logs import get_logger
from streaming.publisher.mapping import PROBLEM
from streaming.publisher.partition_publisher import TALLY_SCHEMA, PartitionPublisher, sum_tallies
from streaming.publisher.progress import ensure_progress_table, reset_progress
from streaming.publisher.seed import load_state, snapshot_rows
from streaming.publisher.state_dir import reset_stream_files
from streaming.publisher.state_store import StateTable, ensure_state_table, stream_target
from streaming.publisher.table_lock import TableLock

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = get_logger(__name__)
_MAX_IDENTIFIER = 63


@dataclass
class RebuildResult:
    table: str
    target: str
    version: int
    rows: int
    quarantined: int
    load_s: float
    duration_s: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.load_s if self.load_s else 0.0


def rebuild(
    spark: SparkSession, settings: LakesyncSettings, table: TableMapping, *, version: int | None = None
) -> RebuildResult:
    started = time.monotonic()
    with TableLock(settings.postgres, stream_target(table), table.name, "rebuilding") as lock:
        pinned = pin(spark, table, version)
        live = TableRef(table.target_schema, table.target_table)
        shadow = TableRef(table.target_schema, side_name(table.target_table, "rebuild"))
        log.info("rebuilding", table=table.name, version=pinned.version, target=str(live), shadow=str(shadow))
        states = StateTable.of(table), StateTable.of(table).shadow()
        _drop(settings, shadow, states[1])  # what a killed earlier run left behind
        try:
            rows, quarantined, load_s = _load_shadow(spark, settings, pinned, shadow)
            _load_shadow_state(settings, pinned, states[1])
            lock.verify()  # a lock lost while loading: another process may own the table now
            _swap(settings, live, shadow, states, pinned.version)
        except BaseException:
            _drop(settings, shadow, states[1])
            raise
        reset_stream_files(spark, settings, table, pinned.source_schema)
        log.info("stream reset", table=table.name, resumes_after_version=pinned.version)
    result = RebuildResult(table.name, str(live), pinned.version, rows, quarantined, load_s, time.monotonic() - started)
    log.info(
        "rebuilt",
        table=table.name,
        version=pinned.version,
        rows=rows,
        quarantined=quarantined,
        rows_per_s=round(result.rows_per_s),
        duration_s=round(result.duration_s, 1),
    )
    return result


def side_name(table: str, purpose: str) -> str:
    """`<table>__lakesync_<purpose>`, shortened with a hash to PostgreSQL's 63 bytes."""
    name = f"{table}__lakesync_{purpose}"
    if len(name.encode()) <= _MAX_IDENTIFIER:
        return name
    digest = hashlib.sha256(table.encode()).hexdigest()[:8]
    suffix = f"~{digest}__lakesync_{purpose}"
    return table.encode()[: _MAX_IDENTIFIER - len(suffix)].decode(errors="ignore") + suffix


def _load_shadow(
    spark: SparkSession, settings: LakesyncSettings, pinned: PinnedSource, shadow: TableRef
) -> tuple[int, int, float]:
    """Create and fill the shadow table, then key and analyze it: (rows, quarantined, seconds)."""
    from pyspark.sql import functions as F

    columns = target_columns(pinned.schema)
    with psycopg.connect(**settings.postgres.connection_kwargs()) as conn:
        create_target_table(conn, shadow, columns, pinned.table.key_columns, primary_key=False)
    loaded_at = time.monotonic()
    with spark_progress(spark, f"rebuild {pinned.table.name} @ v{pinned.version}"):
        quarantined = _quarantine(spark, settings, pinned)
        syncable = pinned.rows.where(F.col(PROBLEM).isNull())
        lines = syncable.select(
            csv_line(
                pinned.schema, [F.lit(pinned.version).cast("long"), F.lit(pinned.commit_ts).cast("timestamp")]
            ).alias("line")
        )
        writer = CopyWriter(
            settings.postgres.connection_kwargs(),
            (shadow.schema, shadow.table),
            [c.name for c in columns] + [VERSION_COLUMN, COMMIT_TS_COLUMN],
        )
        copied = _bounded(lines, settings.postgres.max_spark_connections).mapInArrow(writer, COPY_COUNT_SCHEMA)
        rows = int(copied.agg(F.sum("copied")).first()[0] or 0)  # type: ignore[index]  # a global aggregate always has its one row
    load_s = time.monotonic() - loaded_at
    _add_key_and_analyze(settings, shadow, pinned.table.key_columns)
    return rows, quarantined, load_s


def _bounded(lines: DataFrame, connections: int) -> DataFrame:
    """At most `connections` partitions, hence COPY connections (coalesce avoids a shuffle)."""
    partitions = lines.rdd.getNumPartitions()
    return lines.coalesce(connections) if partitions > connections else lines.repartition(connections)


def _quarantine(spark: SparkSession, settings: LakesyncSettings, pinned: PinnedSource) -> int:
    """Send rows the mapping cannot sync to the dead-letter topic; how many there were."""
    from pyspark.sql import functions as F

    from streaming.publisher.envelope_spark import envelope_json, key_json

    bad = pinned.rows.where(F.col(PROBLEM).isNotNull())
    if bad.isEmpty():
        return 0
    ensure_topics(settings.kafka, [settings.kafka.dead_letter_topic], config=DEAD_LETTER_TOPIC_CONFIG)
    table, schema = pinned.table, pinned.schema
    value = envelope_json(
        table=table.name,
        source=table.source,
        schema=schema,
        key_columns=table.key_columns,
        op=F.lit("upsert"),
        version=F.lit(pinned.version),
        commit_ts=F.lit(pinned.commit_ts).cast("timestamp"),
        row_hash=F.lit(None).cast("long"),
        batch_id=-1,
    )
    planned = bad.select(
        F.lit("quarantine").alias("change_type"),
        key_json(schema, table.key_columns).alias("key"),
        value.cast("binary").alias("value"),
        F.lit(pinned.version).cast("long").alias("version"),
        F.col(PROBLEM).alias("problem"),
        F.lit(None).cast("long").alias("row_hash"),
        F.lit(1).cast("long").alias("group_rows"),
        F.lit(None).cast("long").alias("commit_micros"),
    )
    types = {c.name: c.pg_type for c in target_columns(schema)}
    publisher = PartitionPublisher(
        producer_config(settings.kafka),
        table.topic_name,
        settings.kafka.dead_letter_topic,
        table.name,
        [types[k] for k in table.key_columns],
        stage="rebuild",
        classify_changes=False,
    )
    return sum_tallies(planned.mapInArrow(publisher, TALLY_SCHEMA).collect()).actions["quarantine"]


def _add_key_and_analyze(settings: LakesyncSettings, shadow: TableRef, key_columns: list[str]) -> None:
    keys = sql.SQL(", ").join(sql.Identifier(k) for k in key_columns)
    try:
        with psycopg.connect(**settings.postgres.connection_kwargs()) as conn:
            conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(shadow.identifier, keys))
    except pg_errors.UniqueViolation as exc:
        detail = exc.diag.message_detail or ""
        raise RebuildError(
            f"the source has several rows for one key at this version ({detail}); "
            "fix the source or the table mapping's key_columns"
        ) from None
    with psycopg.connect(**settings.postgres.connection_kwargs(), autocommit=True) as conn:
        conn.execute(sql.SQL("ANALYZE {}").format(shadow.identifier))


def _load_shadow_state(settings: LakesyncSettings, pinned: PinnedSource, shadow: StateTable) -> None:
    """The stream's state as it must be after the swap: V's syncable rows, as images at V."""
    from pyspark.sql import functions as F

    with psycopg.connect(**settings.postgres.connection_kwargs()) as conn:
        ensure_state_table(conn, shadow)
    rows = pinned.rows.where(F.col(PROBLEM).isNull()).select(
        *[f.name for f in pinned.schema.fields], F.lit(pinned.version).cast("long").alias(VERSION_COLUMN)
    )
    entries = snapshot_rows(rows, pinned.schema, pinned.table.key_columns)
    load_state(_bounded(entries, settings.postgres.max_spark_connections), settings.postgres, shadow)


def _swap(
    settings: LakesyncSettings, live: TableRef, shadow: TableRef, states: tuple[StateTable, StateTable], version: int
) -> None:
    """Shadow table and state become live in one transaction; old ones are dropped after it committed."""
    old = TableRef(live.schema, side_name(live.table, "old"))
    live_state, shadow_state = states
    _drop(settings, old)
    with psycopg.connect(**settings.postgres.connection_kwargs()) as conn:
        lock_ddl(conn)
        exists = conn.execute("SELECT to_regclass(%s)", (live.identifier.as_string(conn),)).fetchone() != (None,)
        if exists:
            conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(live.identifier, sql.Identifier(old.table)))
        conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(shadow.identifier, sql.Identifier(live.table)))
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(live_state.identifier))
        conn.execute(
            sql.SQL("ALTER TABLE {} RENAME TO {}").format(shadow_state.identifier, sql.Identifier(live_state.name))
        )
        conn.execute(
            sql.SQL("ALTER TABLE {} RENAME CONSTRAINT {} TO {}").format(
                live_state.identifier, shadow_state.primary_key, live_state.primary_key
            )
        )
        ensure_progress_table(conn)
        reset_progress(conn, live_state.target, version)
        # Events at or before V still waiting in Kafka must not apply over the rebuilt table.
        ensure_floors(conn)
        set_floor(conn, live, version)
    _drop(settings, old)
    _rename_key_constraint(settings, live, shadow)


def _rename_key_constraint(settings: LakesyncSettings, live: TableRef, shadow: TableRef) -> None:
    """The key keeps the shadow's name after the swap; give it the live table's usual one."""
    with psycopg.connect(**settings.postgres.connection_kwargs()) as conn:
        conn.execute(
            sql.SQL("ALTER TABLE {} RENAME CONSTRAINT {} TO {}").format(
                live.identifier,
                sql.Identifier(_pkey_name(shadow.table)),
                sql.Identifier(_pkey_name(live.table)),
            )
        )


def _pkey_name(table: str) -> str:
    """PostgreSQL's default primary key name (for names short enough not to be truncated)."""
    name = f"{table}_pkey"
    return name if len(name.encode()) <= _MAX_IDENTIFIER else name.encode()[:_MAX_IDENTIFIER].decode(errors="ignore")


def _drop(settings: LakesyncSettings, ref: TableRef, state: StateTable | None = None) -> None:
    with psycopg.connect(**settings.postgres.connection_kwargs()) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ref.identifier))
        if state is not None:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(state.identifier))
