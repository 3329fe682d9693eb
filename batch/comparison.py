"""What `lakesync reconcile` produces and `--repair` reads: every key of a table, classified.

Every key lands in exactly one class (batch/reconcile.py explains them): `KINDS`, of which
`DRIFT_KINDS` are drift. The classified keys stay a lazy DataFrame of (`KEY`, `KIND`) columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from batch.pinned_source import PinnedSource

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

DRIFT_KINDS = ("different", "missing_in_target", "extra_in_target")
KINDS = ("equal", *DRIFT_KINDS, "newer_in_target", "deleted_after_pin")
KEY, KIND = "_ls_key", "_ls_kind"


@dataclass(frozen=True)
class Comparison:
    """The classified keys (lazy) and what produced them, for the sample and repairs."""

    pinned: PinnedSource
    source: DataFrame  # mapped source rows with KEY, syncable only
    target: DataFrame | None  # aligned target rows with KEY and the version column
    classified: DataFrame  # KEY, KIND
    target_read: DataFrame | None = None  # the JDBC read under `target`, where key filters push down
