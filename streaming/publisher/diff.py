"""One micro-batch's Spark plan: key and hash every change, collapse per key, build the envelopes.

The plan ends one row per key (rows with a null key stay rows of their own), in the columns the
partition publisher reads (partition_publisher.INPUT_COLUMNS); the classification against the
stream's state happens there, on the executors, per Arrow batch of keys. Rows merged away by the
per-key collapse (changes/collapse.py rules, evaluated here with the ranks of changes/order.py)
are counted through `group_rows`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from changes.order import PREIMAGE, RANKS
from streaming.publisher.envelope_spark import key_json
from streaming.publisher.mapping import CHANGE_TYPE, COMMIT_TIMESTAMP, COMMIT_VERSION, PROBLEM
from streaming.publisher.row_hash_spark import row_hash_column

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import StructType

# Internal column names carry a prefix so they can never clash with a user's column.
PLAN_KEY = "_ls_key"
PLAN_HASH = "_ls_row_hash"
GROUP_ROWS = "_ls_group_rows"


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


def publisher_input(survivors: DataFrame, envelope: Column) -> DataFrame:
    """The collapsed rows in the partition publisher's columns, `envelope` as each row's value."""
    from pyspark.sql import functions as F

    return survivors.select(
        F.col(CHANGE_TYPE).alias("change_type"),
        F.col(PLAN_KEY).alias("key"),
        envelope.cast("binary").alias("value"),
        F.col(COMMIT_VERSION).cast("long").alias("version"),
        F.col(PROBLEM).alias("problem"),
        F.col(PLAN_HASH).alias("row_hash"),
        F.col(GROUP_ROWS).cast("long").alias("group_rows"),
        F.unix_micros(F.col(COMMIT_TIMESTAMP)).alias("commit_micros"),
    )


def envelope_op() -> Column:
    """The envelope's op of a change-feed row: a delete, or an upsert of its image."""
    from pyspark.sql import functions as F

    return F.when(F.col(CHANGE_TYPE) == "delete", F.lit("delete")).otherwise(F.lit("upsert"))
