"""The consumer's guards follow the one order of changes (changes/order.py), across batches."""

from __future__ import annotations

from decimal import Decimal

import pytest

from lakesync.config import LakesyncSettings
from tests.support.consumer_run import run_until_caught_up
from tests.support.consumer_topics import delete, produce, rows, upsert

pytestmark = pytest.mark.integration


def test_an_upsert_of_a_commit_replaces_the_tombstone_of_that_same_commit(table_settings: LakesyncSettings) -> None:
    """A split overwrite published its deletes first: the commit's images, applied later, must win."""
    name, topic = table_settings.tables[0].name, table_settings.tables[0].topic_name
    produce(table_settings, topic, [upsert(name, 1, 3, name="old"), upsert(name, 2, 3, name="old")])
    run_until_caught_up(table_settings, topic)
    produce(table_settings, topic, [m for k in (1, 2) for m in delete(name, k, 7)])
    run_until_caught_up(table_settings, topic)
    assert rows(table_settings, name) == []
    produce(table_settings, topic, [upsert(name, 1, 7, name="new"), upsert(name, 2, 7, name="new")])
    run_until_caught_up(table_settings, topic)
    assert rows(table_settings, name) == [(1, "new", Decimal("1.00"), 7), (2, "new", Decimal("1.00"), 7)]


def test_a_delete_of_a_commit_leaves_the_image_of_that_same_commit(table_settings: LakesyncSettings) -> None:
    """The other order: the image of commit 7 is applied first; the delete of commit 7 is superseded."""
    name, topic = table_settings.tables[0].name, table_settings.tables[0].topic_name
    produce(table_settings, topic, [upsert(name, 1, 7, name="kept")])
    run_until_caught_up(table_settings, topic)
    produce(table_settings, topic, delete(name, 1, 7))
    run_until_caught_up(table_settings, topic)
    assert rows(table_settings, name) == [(1, "kept", Decimal("1.00"), 7)]
    # A superseded delete leaves no tombstone behind: a later image of commit 7 (a replay) is not blocked.
    produce(table_settings, topic, [upsert(name, 1, 8, name="next")])
    run_until_caught_up(table_settings, topic)
    assert rows(table_settings, name) == [(1, "next", Decimal("1.00"), 8)]
