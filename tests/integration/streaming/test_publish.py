"""Delta changes become exactly the expected events on the table's topic."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from changes.envelope import Op
from lakesync.config import LakesyncSettings, TableMapping
from streaming.publisher.progress import read_progress
from streaming.publisher.state_store import stream_target
from tests.support.stream_topics import create_delta, delta_sql, events, read_new, read_topic

pytestmark = pytest.mark.integration

PEOPLE = "id long, name string, city string"


def create(spark: Any, path: str, rows: list[tuple[Any, ...]], schema: str = PEOPLE) -> None:
    create_delta(spark, path, rows, schema)


sql = delta_sql


def latest_by_key(received: list[Any]) -> dict[tuple[Any, ...], Any]:
    return {e.key: e for e in events(received)}


def test_insert_update_noop_update_and_delete(
    spark: Any,
    make_settings: Callable[..., LakesyncSettings],
    mapping: Callable[..., TableMapping],
    run_once: Callable[[LakesyncSettings], None],
) -> None:
    """An unchanged update publishes nothing; a delete publishes a delete and a tombstone."""
    table = mapping()
    settings = make_settings(tables=[table])
    create(spark, table.source, [(1, "ana", "Recife"), (2, "bia", "Natal"), (3, "caio", "Belém")])
    run_once(settings)
    first = read_topic(settings.kafka, table.topic_name)
    assert sorted(e.key[0] for e in events(first)) == [1, 2, 3]
    assert {e.op for e in events(first)} == {Op.UPSERT} and {e.version for e in events(first)} == {0}

    sql(spark, "UPDATE {t} SET name = 'anna' WHERE id = 1", table.source)
    sql(spark, "UPDATE {t} SET name = name WHERE id = 2", table.source)  # a no-op update
    sql(spark, "DELETE FROM {t} WHERE id = 3", table.source)
    run_once(settings)
    new = read_new(settings.kafka, table.topic_name, first)
    got = [(r.key, r.value is None, r.event.op, r.event.key, r.event.version) for r in new]
    assert sorted(got, key=str) == sorted(
        [
            (b'{"id":1}', False, Op.UPSERT, (1,), 1),
            (b'{"id":3}', False, Op.DELETE, (3,), 3),
            (b'{"id":3}', True, Op.DELETE, (3,), 3),
        ],
        key=str,
    )
    upsert = next(e for e in events(new) if e.op is Op.UPSERT)
    assert upsert.after == {"id": 1, "name": "anna", "city": "Recife"}
    assert upsert.table == table.name and upsert.source == table.source and upsert.batch_id == 1
    progress = read_progress(settings.postgres, stream_target(table))
    assert progress is not None and (progress.completed_version, progress.published_version) == (3, 3), progress


def test_several_commits_of_one_key_in_one_batch_publish_only_the_latest(
    spark: Any,
    make_settings: Callable[..., LakesyncSettings],
    mapping: Callable[..., TableMapping],
    run_once: Callable[[LakesyncSettings], None],
) -> None:
    table = mapping()
    settings = make_settings(tables=[table])
    create(spark, table.source, [(1, "a", "x")])
    for name in ("b", "c", "d"):
        sql(spark, f"UPDATE {{t}} SET name = '{name}' WHERE id = 1", table.source)
    run_once(settings)
    published = events(read_topic(settings.kafka, table.topic_name))
    assert [(e.key, e.version, (e.after or {})["name"]) for e in published] == [((1,), 3, "d")]


def test_delete_and_reinsert_in_one_commit_keeps_the_new_image(
    spark: Any,
    make_settings: Callable[..., LakesyncSettings],
    mapping: Callable[..., TableMapping],
    run_once: Callable[[LakesyncSettings], None],
) -> None:
    """An overwrite deletes and re-inserts every key in one commit: only real changes go out."""
    table = mapping()
    settings = make_settings(tables=[table])
    create(spark, table.source, [(1, "a", "x"), (2, "b", "y")])
    run_once(settings)
    first = read_topic(settings.kafka, table.topic_name)
    (
        spark.createDataFrame([(1, "a", "x"), (2, "B", "y"), (4, "d", "w")], PEOPLE)
        .write.format("delta")
        .mode("overwrite")
        .save(table.source)
    )
    run_once(settings)
    new = read_new(settings.kafka, table.topic_name, first)
    got = sorted((r.event.op, r.event.key, r.value is None) for r in new)
    assert got == [(Op.UPSERT, (2,), False), (Op.UPSERT, (4,), False)]
    assert {(e.after or {})["name"] for e in events(new)} == {"B", "d"}


def test_merge_commit_publishes_its_inserts_updates_and_deletes(
    spark: Any,
    make_settings: Callable[..., LakesyncSettings],
    mapping: Callable[..., TableMapping],
    run_once: Callable[[LakesyncSettings], None],
) -> None:
    table = mapping()
    settings = make_settings(tables=[table])
    create(spark, table.source, [(1, "a", "x"), (2, "b", "y"), (3, "c", "z")])
    run_once(settings)
    first = read_topic(settings.kafka, table.topic_name)
    spark.createDataFrame(
        [(1, "A", "x"), (2, None, None), (5, "e", "v"), (3, "c", "z")], PEOPLE
    ).createOrReplaceTempView("incoming")
    sql(
        spark,
        """MERGE INTO {t} AS t USING incoming AS s ON t.id = s.id
                  WHEN MATCHED AND s.name IS NULL THEN DELETE
                  WHEN MATCHED THEN UPDATE SET *
                  WHEN NOT MATCHED THEN INSERT *""",
        table.source,
    )
    run_once(settings)
    new = [r for r in read_new(settings.kafka, table.topic_name, first) if r.value is not None]
    assert sorted((r.event.op, r.event.key, r.event.version) for r in new) == [
        (Op.DELETE, (2,), 1),
        (Op.UPSERT, (1,), 1),
        (Op.UPSERT, (5,), 1),
    ]


def test_two_mappings_in_one_job_keep_both_in_step(
    spark: Any,
    make_settings: Callable[..., LakesyncSettings],
    mapping: Callable[..., TableMapping],
    run_once: Callable[[LakesyncSettings], None],
) -> None:
    people, cities = mapping("people"), mapping("cities", key_columns=["code"])
    settings = make_settings(tables=[people, cities])
    create(spark, people.source, [(1, "a", "x")])
    create(spark, cities.source, [("RE", "Recife"), ("NA", "Natal")], "code string, name string")
    run_once(settings)
    sql(spark, "DELETE FROM {t} WHERE code = 'NA'", cities.source)
    sql(spark, "INSERT INTO {t} VALUES (2, 'b', 'y')", people.source)
    run_once(settings)
    assert latest_by_key(read_topic(settings.kafka, people.topic_name)).keys() == {(1,), (2,)}
    city_events = latest_by_key(read_topic(settings.kafka, cities.topic_name))
    assert city_events[("NA",)].op is Op.DELETE and city_events[("RE",)].op is Op.UPSERT


def test_progress_never_goes_back_and_an_idle_stream_has_published_the_latest_version(
    spark: Any,
    make_settings: Callable[..., LakesyncSettings],
    mapping: Callable[..., TableMapping],
    run_once: Callable[[LakesyncSettings], None],
) -> None:
    """Restarts with nothing new keep the progress; version lag 0 and reconcile pins the latest."""
    from batch.reconcile import choose_version
    from streaming.publisher import source
    from streaming.publisher.metrics import version_lag

    table = mapping()
    settings = make_settings(tables=[table])
    create(spark, table.source, [(1, "a", "x"), (2, "b", "y")])
    sql(spark, "UPDATE {t} SET name = 'c' WHERE id = 1", table.source)
    sql(spark, "DELETE FROM {t} WHERE id = 2", table.source)
    run_once(settings)
    latest = source.latest_version(spark, table)
    first = read_progress(settings.postgres, stream_target(table))
    assert first is not None and (first.completed_version, first.published_version) == (latest, latest)
    for _ in range(2):  # restarts that read nothing new
        run_once(settings)
        again = read_progress(settings.postgres, stream_target(table))
        assert again is not None and (again.completed_version, again.published_version) == (latest, latest)
    assert again is not None and version_lag(latest, again.published_version, table.starting_version) == 0
    assert choose_version(settings, table, None) == (latest, "stream progress")
