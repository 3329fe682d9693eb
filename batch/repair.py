"""`lakesync reconcile --repair`: corrective events through the same Kafka path.

Repairs are ordinary envelopes, so the consumer applies them with the usual guarantees:

    missing_in_target, different  ->  upsert with the source row at the pinned version V
    extra_in_target               ->  delete at version V (and its tombstone)

They carry `batch_id = -1` (REPAIR_BATCH_ID): the consumer lets a repair overwrite a row at the
same version V, which a replayed stream event may not. Keys changed after V are not drift and
get no repair, so a repair never undoes a newer change. The published repairs are also appended
to the streaming job's state snapshot, so the stream's next diff starts from the repaired state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from batch.reconcile import KEY, KIND, Comparison
from changes.envelope import REPAIR_BATCH_ID
from changes.row_hash import row_hash_column
from changes.type_mapping import target_columns
from connectors.kafka import CHANGE_TOPIC_CONFIG, DEAD_LETTER_TOPIC_CONFIG, ensure_topics, producer_config
from lakesync.config import LakesyncSettings
from lakesync.logs import get_logger
from streaming.publisher.diff import ACTIONS
from streaming.publisher.envelope_spark import envelope_json
from streaming.publisher.job import table_state_dir
from streaming.publisher.kafka_sink import STATE_ROW_SCHEMA, PartitionPublisher
from streaming.publisher.state_snapshot import StateSnapshot

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = get_logger(__name__)


def publish_repairs(spark: SparkSession, settings: LakesyncSettings, comparison: Comparison) -> int:
    """Publish one corrective event per drifted key; returns how many were published."""
    table = comparison.pinned.table
    ensure_topics(settings.kafka, [table.topic_name], config=CHANGE_TOPIC_CONFIG)
    ensure_topics(settings.kafka, [settings.kafka.dead_letter_topic], config=DEAD_LETTER_TOPIC_CONFIG)
    counters = {name: spark.sparkContext.accumulator(0) for name in (*ACTIONS, "group_rows")}
    entries = planned_repairs(comparison).mapInArrow(
        _publisher(settings, comparison).for_batch(counters), STATE_ROW_SCHEMA
    )
    snapshot = StateSnapshot(spark, table_state_dir(settings, table) / "snapshot")
    if snapshot.exists():
        snapshot.append(entries)
    else:  # no stream has run for this table yet: publishing alone is the whole job
        entries.write.format("noop").mode("overwrite").save()
    repaired = counters["upsert"].value + counters["delete"].value
    log.info(
        "repairs published",
        table=table.name,
        version=comparison.pinned.version,
        upserts=counters["upsert"].value,
        deletes=counters["delete"].value,
    )
    return repaired


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
        F.col("action"),
        F.col(KEY).alias("key"),
        value.cast("binary").alias("value"),
        F.lit(pinned.version).cast("long").alias("version"),
        F.lit(None).cast("string").alias("problem"),
        F.when(F.col("action") == "upsert", row_hash).alias("row_hash"),
        F.lit(1).cast("long").alias("group_rows"),
    )


def _publisher(settings: LakesyncSettings, comparison: Comparison) -> PartitionPublisher:
    table = comparison.pinned.table
    types = {c.name: c.pg_type for c in target_columns(comparison.pinned.schema)}
    return PartitionPublisher(
        producer_config=producer_config(settings.kafka),
        topic=table.topic_name,
        dead_letter_topic=settings.kafka.dead_letter_topic,
        table=table.name,
        key_types=[types[k] for k in table.key_columns],
        repair=True,
    )
