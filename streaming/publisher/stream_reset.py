"""Restarting a table's stream from a known version, after `lakesync rebuild` reloaded it.

A rebuild loads PostgreSQL with the table at Delta version V. The stream must then publish
exactly the changes after V: no gap (nothing after V skipped) and no double-apply (nothing at or
before V again — the consumer's version guard would skip it anyway). So the rebuild replaces the
table's stream state with V's: the state snapshot becomes V's rows, the checkpoint is removed,
and `resume_version` tells the next `lakesync stream` to start its change feed at V itself
(Delta refuses a start version that does not exist yet, and V + 1 may not). V's own changes
then diff against a state that already holds them: all no-ops, nothing is published twice.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from streaming.publisher.progress import Progress, save_progress
from streaming.publisher.schema_guard import SchemaRecord
from streaming.publisher.state_snapshot import StateSnapshot

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType

RESUME_FILE = "resume_version"


def checkpoint_dir(table_state: Path) -> Path:
    return table_state / "checkpoint"


def resume_version(table_state: Path) -> int | None:
    """The version a fresh stream (no checkpoint yet) must start at, if a rebuild set one."""
    path = table_state / RESUME_FILE
    if checkpoint_dir(table_state).exists() or not path.exists():
        return None
    return int(path.read_text().strip())


def reset_stream(table_state: Path, snapshot_rows: DataFrame, source_schema: StructType, version: int) -> None:
    """Make the table's stream resume right after `version`, with `snapshot_rows` as its state."""
    StateSnapshot(snapshot_rows.sparkSession, table_state / "snapshot").reset(snapshot_rows)
    SchemaRecord(table_state / "source_schema.json").save(source_schema)
    shutil.rmtree(checkpoint_dir(table_state), ignore_errors=True)
    tmp = table_state / (RESUME_FILE + ".tmp")
    tmp.write_text(f"{version}\n")
    tmp.replace(table_state / RESUME_FILE)
    now = dt.datetime.now(dt.UTC).isoformat()
    save_progress(
        table_state, Progress(completed_version=version, batch_id=-1, updated_at=now, published_version=version)
    )
