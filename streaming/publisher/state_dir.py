"""Where the stream keeps its Spark checkpoint, `<state_dir>/<table>/checkpoint`, on any store
Spark reaches (a local directory, `s3a://bucket/...`); and restarting the stream from a known
version after `lakesync rebuild` reloaded the table.

A rebuild loads PostgreSQL with the table at Delta version V. The stream must then publish
exactly the changes after V: no gap (nothing after V skipped) and no double-apply (nothing at or
before V again). The rebuild replaces the stream's state with V's rows and sets the table's
progress to V with `resume_version = V`, in the transaction that swaps the rebuilt table in
(batch/rebuild.py); here the rest follows: the recorded source schema becomes V's and the
checkpoint is removed, so the next `lakesync stream` starts its change feed at V itself, whose
changes diff as no-ops against the rebuilt state.

Everything that must be atomic or exclusive is in PostgreSQL (state, progress, source schema,
table lock): only Spark's checkpoint, written by Spark alone, stays on the store.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from connectors import storage
from lakesync.config import LakesyncSettings, TableMapping
from streaming.publisher.schema_guard import SchemaRecord
from streaming.publisher.state_store import stream_target

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.types import StructType


def table_state_dir(settings: LakesyncSettings, table: TableMapping) -> str:
    return storage.join(storage.absolute(settings.state_dir), table.name)


def checkpoint_dir(table_state: str) -> str:
    return storage.join(table_state, "checkpoint")


def has_checkpoint(spark: SparkSession, table_state: str) -> bool:
    return storage.exists(spark, checkpoint_dir(table_state))


def schema_record(settings: LakesyncSettings, table: TableMapping) -> SchemaRecord:
    return SchemaRecord(settings.postgres, stream_target(table))


def legacy_schema(spark: SparkSession, table_state: str) -> StructType | None:
    """The schema an older lakesync recorded in `<state_dir>/<table>/source_schema.json`, if any."""
    from pyspark.sql import types as T

    text = storage.read_text(spark, storage.join(table_state, "source_schema.json"))
    return None if text is None else T.StructType.fromJson(json.loads(text))


def reset_stream_files(
    spark: SparkSession, settings: LakesyncSettings, table: TableMapping, source_schema: StructType
) -> None:
    """Record V's source schema and drop the checkpoint: the next stream starts fresh at V."""
    schema_record(settings, table).save(source_schema)
    storage.delete(spark, checkpoint_dir(table_state_dir(settings, table)))
