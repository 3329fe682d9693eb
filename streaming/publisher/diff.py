"""One micro-batch's plan: collapse per key, hash, diff against the state snapshot, classify.

Every change-feed row ends up in exactly one action (counted, never silently dropped):

    upsert      image of a key that is new, or whose row hash differs from the snapshot
    delete      delete of a key the snapshot knows
    noop        image whose hash equals the snapshot's, or delete of an unknown key
    stale       older than what the snapshot already holds for the key (a replay)
    quarantine  cannot be synced (null key, failed cast, NUL character): dead-letter topic

Rows merged away by the per-key collapse (changes/collapse.py) are counted as `collapsed`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from changes.order import PREIMAGE, RANKS
from changes.row_hash import row_hash_column
from streaming.publisher.envelope_spark import key_json
from streaming.publisher.mapping import CHANGE_TYPE, COMMIT_VERSION, PROBLEM
from streaming.publisher.state_snapshot import KEY, ROW_HASH, VERSION

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import StructType

# Internal column names carry a prefix so they can never clash with a user's column.
PLAN_KEY = "_ls_key"
PLAN_HASH = "_ls_row_hash"
ACTION = "_ls_action"
GROUP_ROWS = "_ls_group_rows"
ACTIONS = ("upsert", "delete", "noop", "stale", "quarantine")
PUBLISHED = ("upsert", "delete", "quarantine")


def keyed(mapped: DataFrame, schema: StructType, key_columns: list[str]) -> DataFrame:
    """Mapped feed rows plus their canonical key and (for images) row hash."""
    from pyspark.sql import functions as F

    return mapped.select(
        "*",
        key_json(schema, key_columns).alias(PLAN_KEY),
        F.when(F.col(CHANGE_TYPE) != "delete", row_hash_column(schema)).alias(PLAN_HASH),
    )


def collapse(keyed_rows: DataFrame) -> DataFrame:
    """Latest change per key (changes/collapse.py rules), with the group's row count.

    One window (a single sort per partition) ranks the rows of each key; null-key rows cannot be
    grouped by key, so each stays a row of its own and is quarantined.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    null_key = F.coalesce(F.col(PROBLEM).startswith("null_key:"), F.lit(False))
    rank = F.create_map(*[F.lit(x) for pair in RANKS.items() for x in pair])[F.col(CHANGE_TYPE)]
    # Preimages sort last and never win; they still count toward the group's rows.
    latest_first = Window.partitionBy(PLAN_KEY).orderBy(
        (F.col(CHANGE_TYPE) == PREIMAGE).asc(), F.col(COMMIT_VERSION).desc(), rank.desc()
    )
    whole_group = latest_first.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    ranked = keyed_rows.where(~null_key).select(
        "*",
        F.count(F.lit(1)).over(whole_group).alias(GROUP_ROWS),
        F.row_number().over(latest_first).alias("_ls_rank"),
    )
    winners = ranked.where((F.col("_ls_rank") == 1) & (F.col(CHANGE_TYPE) != PREIMAGE)).drop("_ls_rank")
    null_rows = keyed_rows.where(null_key).select("*", F.lit(1).cast("long").alias(GROUP_ROWS))
    return winners.unionByName(null_rows)


def classify(survivors: DataFrame, state: DataFrame, *, small: bool) -> DataFrame:
    """Survivors with their action, given the snapshot's (key, row_hash, version) for their keys.

    `small`: the batch is small, so its state rows are too and are broadcast to the join.
    """
    from pyspark.sql import functions as F

    lookup = state.select(
        F.col(KEY).alias("_ls_state_key"),
        F.col(ROW_HASH).alias("_ls_state_hash"),
        F.col(VERSION).alias("_ls_state_version"),
    )
    joined = survivors.join(
        F.broadcast(lookup) if small else lookup, survivors[PLAN_KEY] == F.col("_ls_state_key"), "left"
    )
    return joined.select(*[survivors[c] for c in survivors.columns], _action().alias(ACTION))


def _action() -> Column:
    from pyspark.sql import functions as F

    known = F.col("_ls_state_key").isNotNull()
    is_delete = F.col(CHANGE_TYPE) == "delete"
    return (
        F.when(F.col(PROBLEM).isNotNull(), F.lit("quarantine"))
        .when(known & (F.col(COMMIT_VERSION) < F.col("_ls_state_version")), F.lit("stale"))
        .when(is_delete & known, F.lit("delete"))
        .when(is_delete, F.lit("noop"))
        .when(known & (F.col(PLAN_HASH) == F.col("_ls_state_hash")), F.lit("noop"))
        .otherwise(F.lit("upsert"))
    )
