"""Seeding the stream's state from the target waits for the consumer (issue: a delete lost after seeding)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg import sql

from connectors.errors import ConsumerBehindError
from streaming.publisher.job import StreamJob
from streaming.publisher.state_store import StateTable, stream_target
from tests.support.consumer_run import run_until_caught_up
from tests.support.pipeline import Pipeline

pytestmark = pytest.mark.integration


def test_a_key_published_but_not_applied_is_not_lost_when_the_state_is_seeded_again(
    pipeline: Callable[..., Pipeline], spark: Any
) -> None:
    p = pipeline()
    settings = p.settings.model_copy(update={"stream": p.settings.stream.model_copy(update={"seed_wait_s": 3.0})})
    spark.range(20).selectExpr("id", "concat('n', id) AS name").write.format("delta").option(
        "delta.enableChangeDataFeed", "true"
    ).save(p.table.source)
    p.sync()
    # The consumer is down: new keys are published, not applied.
    p.sql("INSERT INTO {t} VALUES (100, 'new'), (101, 'new'), (102, 'new')")
    StreamJob(settings, settings.tables, once=True).run(spark)
    # The stream's state is lost (an upgrade from the old state layout, a restored database, ...)
    _forget_state(p)
    p.sql("DELETE FROM {t} WHERE id >= 100")
    # Seeding now would miss 100-102: their deletes would look like no-ops. The stream refuses.
    with pytest.raises(ConsumerBehindError, match="seed_wait_s"):
        StreamJob(settings, settings.tables, once=True).run(spark)
    run_until_caught_up(settings, p.table.topic_name, timeout_s=120)
    StreamJob(settings, settings.tables, once=True).run(spark)  # seeds from the caught-up target
    run_until_caught_up(settings, p.table.topic_name, timeout_s=120)
    assert p.target_rows() == p.delta_rows()


def _forget_state(p: Pipeline) -> None:
    with psycopg.connect(**p.settings.postgres.connection_kwargs()) as conn:
        conn.execute(sql.SQL("DROP TABLE {}").format(StateTable.of(p.table).identifier))
        conn.execute("DELETE FROM lakesync.stream_progress WHERE target = %s", (stream_target(p.table),))
