"""Seeding the stream's state (state_store.py) from what the target table holds.

The first `lakesync stream` of a table mapping reads the target table with a partitioned,
parallel JDBC read, computes each row's canonical key and row hash with the same Spark
expressions as the stream, and COPYs `(key, row_hash, _lakesync_version, image rank)` into the
state table from the Spark partitions (at most `postgres.max_spark_connections` connections).
Rows already in PostgreSQL then diff as no-ops instead of being published again. A missing or
empty target gives an empty state. `lakesync rebuild` loads the state the same way from the rows
it loads into the shadow table (`load_state`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from changes.order import IMAGE_RANK
from connectors.postgres_copy import CopyWriter, csv_line
from connectors.postgres_read import align_to_schema, existing_table, read_table
from connectors.postgres_schema import VERSION_COLUMN, TableRef
from connectors.spark import column
from lakesync.config import PostgresSettings, TableMapping
from lakesync.logs import get_logger
from streaming.publisher.envelope_spark import key_json
from streaming.publisher.progress import ensure_progress_table, mark_seeded
from streaming.publisher.row_hash_spark import row_hash_column
from streaming.publisher.state_store import COLUMNS, KEY, RANK, ROW_HASH, VERSION, StateTable, ensure_state_table

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

log = get_logger(__name__)


def seed_state(spark: SparkSession, pg: PostgresSettings, table: TableMapping, target_schema: StructType) -> int:
    """Replace the mapping's state with the target table's rows; returns how many keys it holds."""
    state = StateTable.of(table)
    with psycopg.connect(**pg.connection_kwargs()) as conn:
        ensure_progress_table(conn)
        ensure_state_table(conn, state)
        conn.execute(sql.SQL("TRUNCATE {}").format(state.identifier))
    ref = TableRef(table.target_schema, table.target_table)
    target = existing_table(pg, ref)
    seeded = 0
    if target is not None and VERSION_COLUMN in target.columns:
        names = [f.name for f in target_schema.fields] + [VERSION_COLUMN]
        raw = read_table(spark, pg, ref, target, names, table.key_columns)
        rows = snapshot_rows(align_to_schema(raw, target_schema), target_schema, table.key_columns)
        seeded = load_state(rows, pg, state)
    with psycopg.connect(**pg.connection_kwargs()) as conn:
        mark_seeded(conn, state.target)
    log.info("stream state seeded", table=table.name, keys=seeded, from_target=target is not None)
    return seeded


def snapshot_rows(frame: DataFrame, target_schema: StructType, key_columns: list[str]) -> DataFrame:
    """(key, row_hash, version) of target-mapped rows carrying `_lakesync_version`.

    A row without a version (loaded by something other than lakesync) sits before every change
    (-1): the first image of its key supersedes it, and is published unless its hash is equal.
    """
    from pyspark.sql import functions as F

    return frame.select(
        key_json(target_schema, key_columns).alias(KEY),
        row_hash_column(target_schema).alias(ROW_HASH),
        F.coalesce(column(VERSION_COLUMN).cast("long"), F.lit(-1).cast("long")).alias(VERSION),
    )


def load_state(rows: DataFrame, pg: PostgresSettings, state: StateTable) -> int:
    """COPY (key, row_hash, version) rows into `state` as images, from the Spark partitions."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    entries = rows.select(KEY, ROW_HASH, VERSION, F.lit(IMAGE_RANK).cast("short").alias(RANK))
    schema = T.StructType([entries.schema[name] for name in COLUMNS])
    writer = CopyWriter(pg.connection_kwargs(), ("lakesync", state.name), list(COLUMNS))
    copied = entries.select(csv_line(schema).alias("line")).mapInArrow(writer, "copied long")
    total = copied.agg(F.sum("copied")).first()
    return int(total[0] or 0) if total is not None else 0
