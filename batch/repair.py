"""`lakesync reconcile --repair`: corrective events through the same Kafka path.

Repairs are ordinary envelopes, so the consumer applies them with the usual guarantees:

    missing_in_target, different  ->  upsert with the source row at the pinned version V
    extra_in_target               ->  delete at version V (and its tombstone)

They carry `batch_id = -1` (REPAIR_BATCH_ID): the consumer lets a repair overwrite a row at the
same version V, which a replayed stream event may not. Keys changed after V are not drift and
get no repair, so a repair never undoes a newer change. The task that publishes a repair also
records it in the stream's state (state_store.py) at the repair's position, with the same guard
as every state write: a key the stream changed after V keeps the stream's entry, and the stream
and the repair may run at the same time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg

from batch.comparison import KEY, KIND, Comparison
from changes.envelope import REPAIR_BATCH_ID
from connectors.kafka import CHANGE_TOPIC_CONFIG, DEAD_LETTER_TOPIC_CONFIG, ensure_topics, producer_config
from connectors.spark_types import target_columns
from lakesync.config import LakesyncSettings
from lakesync.logs import get_logger
from streaming.publisher.envelope_spark import envelope_json
from streaming.publisher.partition_publisher import TALLY_SCHEMA, PartitionPublisher, sum_tallies
from streaming.publisher.row_hash_spark import row_hash_column
from streaming.publisher.state_store import StateTable, state_table_exists

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = get_logger(__name__)


def publish_repairs(spark: SparkSession, settings: LakesyncSettings, comparison: Comparison) -> int:
    """Publish one corrective event per drifted key; returns how many were published."""
    table = comparison.pinned.table
    ensure_topics(settings.kafka, [table.topic_name], config=CHANGE_TOPIC_CONFIG)
    ensure_topics(settings.kafka, [settings.kafka.dead_letter_topic], config=DEAD_LETTER_TOPIC_CONFIG)
    tally = sum_tallies(
        planned_repairs(comparison).mapInArrow(_publisher(settings, comparison), TALLY_SCHEMA).collect()
    )
    upserts, deletes = tally.actions["upsert"], tally.actions["delete"]
    log.info("repairs published", table=table.name, version=comparison.pinned.version, upserts=upserts, deletes=deletes)
    return upserts + deletes


def planned_repairs(comparison: Comparison) -> DataFrame:
    """The repairs as the publisher's input rows (action, key, value, version, ...)."""
    from pyspark.sql import functions as F

    pinned, schema = comparison.pinned, comparison.pinned.schema
    drifted = comparison.classified
    names = [f.name for f in schema.fields]
    upserts = comparison.source.join(
        drifted.where(F.col(KIND).isin("different", "missing_in_target")), KEY, "left_semi"
    ).select(*names, KEY, F.lit("upsert").alias("action"))
    rows = upserts
    if comparison.target is not None:
        deletes = comparison.target.join(drifted.where(F.col(KIND) == "extra_in_target"), KEY, "left_semi").select(
            *names, KEY, F.lit("delete").alias("action")
        )
        rows = upserts.unionByName(deletes)
    row_hash = row_hash_column(schema)
    value = envelope_json(
        table=pinned.table.name,
        source=pinned.table.source,
        schema=schema,
        key_columns=pinned.table.key_columns,
        op=F.col("action"),
        version=F.lit(pinned.version),
        commit_ts=F.lit(pinned.commit_ts).cast("timestamp"),
        row_hash=row_hash,
        batch_id=REPAIR_BATCH_ID,
    )
    return rows.select(
        F.col("action").alias("change_type"),
        F.col(KEY).alias("key"),
        value.cast("binary").alias("value"),
        F.lit(pinned.version).cast("long").alias("version"),
        F.lit(None).cast("string").alias("problem"),
        F.when(F.col("action") == "upsert", row_hash).alias("row_hash"),
        F.lit(1).cast("long").alias("group_rows"),
        F.lit(None).cast("long").alias("commit_micros"),
    )


def _publisher(settings: LakesyncSettings, comparison: Comparison) -> PartitionPublisher:
    table = comparison.pinned.table
    types = {c.name: c.pg_type for c in target_columns(comparison.pinned.schema)}
    state = StateTable.of(table)
    with psycopg.connect(**settings.postgres.connection_kwargs()) as conn:
        # No stream has run for this table yet: publishing alone is the whole job.
        recorded = state_table_exists(conn, state)
    return PartitionPublisher(
        producer_config=producer_config(settings.kafka),
        topic=table.topic_name,
        dead_letter_topic=settings.kafka.dead_letter_topic,
        table=table.name,
        key_types=[types[k] for k in table.key_columns],
        state=state if recorded else None,
        connection=settings.postgres.connection_kwargs(),
        repair=True,
        classify_changes=False,
    )
