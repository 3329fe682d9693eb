"""Delta tables, lookups and the stream's checkpoints on a real S3 server (SeaweedFS, through S3A):
the stream, the consumer, reconcile and rebuild work as they do on a local disk, and what must be
atomic or exclusive (state, progress, source schema, lock) is in PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from batch.rebuild import rebuild
from batch.reconcile import reconcile
from connectors import storage
from deploy.embedded_stack import EmbeddedStack
from lakesync.config import ColumnMapping, LookupTable
from streaming.publisher.state_dir import checkpoint_dir, schema_record, table_state_dir
from tests.support.pipeline import Pipeline
from tests.support.stream_topics import events, read_new, read_topic

pytestmark = pytest.mark.integration

UF_CSV = Path(__file__).parents[3] / "deploy" / "sample_data" / "uf_ibge.csv"


UF_CODES = "11,12,13,14,15,16,17,21,22,23,24,25,26,27,28,29,31,32,33,35,41,42,43,50,51,52,53"


def write(spark: Any, path: str, ids: range, mode: str = "overwrite") -> None:
    uf = f"CAST(element_at(array({UF_CODES}), CAST(id % 27 + 1 AS INT)) AS INT) AS uf"
    frame = spark.range(ids.start, ids.stop).selectExpr("id", "concat('n', id) AS name", uf)
    frame.write.format("delta").mode(mode).option("delta.enableChangeDataFeed", "true").save(path)


def test_stream_and_consumer_with_the_table_lookup_and_checkpoint_on_s3(
    s3_pipeline: Callable[..., Pipeline], spark: Any, embedded_stack: EmbeddedStack, unique_name: str
) -> None:
    lookup = embedded_stack.s3.url(unique_name, "lookups", "uf")
    spark.read.option("header", "true").csv(str(UF_CSV)).write.mode("overwrite").option("header", "true").csv(lookup)
    p = s3_pipeline(
        columns=[
            ColumnMapping(name="id", source="id"),
            ColumnMapping(name="name", source="name"),
            ColumnMapping(name="state", expr="uf_names.name"),
        ],
        lookups=[LookupTable(name="uf_names", path=lookup, on={"uf": "code"})],
    )
    write(spark, p.table.source, range(200))
    p.sync()
    p.sql("UPDATE {t} SET name = 'changed' WHERE id < 10")
    p.sql("DELETE FROM {t} WHERE id >= 190")
    p.sync()

    expected = spark.read.format("delta").load(p.table.source).where("id < 3").orderBy("id").collect()
    assert p.pg("SELECT count(*) FROM {t}") == [(190,)]
    assert p.pg("SELECT id, name FROM {t} WHERE id < 3 ORDER BY id") == [(r["id"], "changed") for r in expected]
    assert p.pg("SELECT count(*) FROM {t} WHERE state IS NULL") == [(0,)]  # every code found on S3
    state = table_state_dir(p.settings, p.table)
    assert state.startswith("s3a://") and storage.exists(spark, storage.join(checkpoint_dir(state), "offsets"))
    assert schema_record(p.settings, p.table).load() is not None  # recorded in PostgreSQL, not beside it


def test_rebuild_on_s3_drops_the_checkpoint_there_and_the_stream_resumes_after_it(
    s3_pipeline: Callable[..., Pipeline], spark: Any
) -> None:
    p = s3_pipeline()
    write(spark, p.table.source, range(50))
    p.sync()
    p.sql("UPDATE {t} SET name = 'before-rebuild' WHERE id < 5")
    rebuilt = rebuild(spark, p.settings, p.table)
    assert not storage.exists(spark, checkpoint_dir(table_state_dir(p.settings, p.table)))

    before = read_topic(p.settings.kafka, p.table.topic_name)
    p.sql("UPDATE {t} SET name = 'after-rebuild' WHERE id = 7")
    p.sync()
    new = events(read_new(p.settings.kafka, p.table.topic_name, before))
    assert [(e.key, e.version) for e in new] == [((7,), rebuilt.version + 1)]
    assert p.pg("SELECT count(*) FROM {t} WHERE name = 'before-rebuild'") == [(5,)]
    assert reconcile(spark, p.settings, p.table).counts.drift == 0


def test_reconcile_on_s3_finds_drift_and_repairs_it(s3_pipeline: Callable[..., Pipeline], spark: Any) -> None:
    p = s3_pipeline()
    write(spark, p.table.source, range(100))
    p.sync()
    p.pg("UPDATE {t} SET name = 'drifted' WHERE id = 3")
    p.pg("DELETE FROM {t} WHERE id = 4")
    found = reconcile(spark, p.settings, p.table, repair=True)
    assert (found.counts.different, found.counts.missing_in_target) == (1, 1)
    p.sync()
    assert reconcile(spark, p.settings, p.table).counts.drift == 0
    assert p.target_rows() == p.delta_rows()
