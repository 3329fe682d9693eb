"""What the stream keeps on the filesystem per table, `<state_dir>/<table>/`: its Spark
checkpoint, the recorded source schema and the table lock; and restarting the stream from a
known version after `lakesync rebuild` reloaded the table.

A rebuild loads PostgreSQL with the table at Delta version V. The stream must then publish
exactly the changes after V: no gap (nothing after V skipped) and no double-apply (nothing at or
before V again). The rebuild replaces the stream's state with V's rows and sets the table's
progress to V with `resume_version = V`, in the transaction that swaps the rebuilt table in
(batch/rebuild.py); here the files beside the checkpoint follow: the recorded source schema
becomes V's and the checkpoint is removed, so the next `lakesync stream` starts its change feed
at V itself, whose changes diff as no-ops against the rebuilt state.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from lakesync.config import LakesyncSettings, TableMapping
from streaming.publisher.schema_guard import SchemaRecord

if TYPE_CHECKING:
    from pyspark.sql.types import StructType


def table_state_dir(settings: LakesyncSettings, table: TableMapping) -> Path:
    return Path(settings.state_dir).absolute() / table.name


def checkpoint_dir(table_state: Path) -> Path:
    return table_state / "checkpoint"


def has_checkpoint(table_state: Path) -> bool:
    return checkpoint_dir(table_state).exists()


def reset_stream_files(table_state: Path, source_schema: StructType) -> None:
    """Record V's source schema and drop the checkpoint: the next stream starts fresh at V."""
    SchemaRecord(table_state / "source_schema.json").save(source_schema)
    shutil.rmtree(checkpoint_dir(table_state), ignore_errors=True)
