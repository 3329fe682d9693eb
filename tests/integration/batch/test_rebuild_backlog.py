"""A rebuild over a backlog the consumer has not applied yet: PostgreSQL still ends equal to Delta."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from batch.rebuild import rebuild
from streaming.publisher.job import StreamJob
from tests.support.consumer_run import run_until_caught_up
from tests.support.pipeline import Pipeline

from .test_rebuild import write

pytestmark = pytest.mark.integration


def test_a_rebuild_over_an_unapplied_backlog_never_lets_an_old_upsert_back_in(
    pipeline: Callable[..., Pipeline], spark: Any
) -> None:
    """Upserts published but not applied, their keys then deleted in Delta before the rebuild's version:
    the backlog's upserts must not bring the deleted keys back once the consumer runs again."""
    p = pipeline()
    write(spark, p.table.source, range(40))
    p.sync()
    # The consumer is down from here. The stream publishes updates of ids 0-19 (a backlog) ...
    p.sql("UPDATE {t} SET name = concat('backlog-', name) WHERE id < 20")
    p.sql("DELETE FROM {t} WHERE id < 5")  # ... and deletes of 0-4, published too
    StreamJob(p.settings, p.settings.tables, once=True).run(spark)
    # The stream stops; 5-14 are deleted in Delta and never published: the rebuild's version has them gone.
    p.sql("DELETE FROM {t} WHERE id >= 5 AND id < 15")
    p.sql("UPDATE {t} SET name = 'rebuilt' WHERE id = 30")
    rebuild(spark, p.settings, p.table)
    run_until_caught_up(p.settings, p.table.topic_name, timeout_s=120)  # the consumer applies the backlog
    assert p.target_rows() == p.delta_rows()
    # And the stream resumes after the rebuild: later changes still flow.
    p.sql("UPDATE {t} SET name = 'after' WHERE id = 31")
    p.sync()
    assert p.target_rows() == p.delta_rows()
