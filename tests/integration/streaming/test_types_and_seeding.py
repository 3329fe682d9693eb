"""Every supported type survives the envelope exactly, and the PostgreSQL-seeded state hashes
equal to Delta's: rows already in PostgreSQL are not republished."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from lakesync.config import LakesyncSettings, TableMapping
from tests.support.rich_rows import PG_COLUMNS, SCHEMA, row
from tests.support.stream_topics import create_delta, events, read_topic

pytestmark = pytest.mark.integration


def as_pg(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """The row as the consumer stores it: nested values as jsonb."""
    *scalars, tags, scores, (city, zip_code) = values
    return (*scalars, Jsonb(tags), Jsonb(scores), Jsonb({"city": city, "zip": zip_code}), 0)


def test_types_round_trip_and_seeded_rows_are_not_republished(
    spark: Any,
    make_settings: Callable[..., LakesyncSettings],
    mapping: Callable[..., TableMapping],
    run_once: Callable[[LakesyncSettings], None],
) -> None:
    table = mapping()
    settings = make_settings(tables=[table])
    rows = [row(i) for i in range(1, 6)]
    create_delta(spark, table.source, rows, SCHEMA)
    in_postgres = [rows[0], rows[1], rows[2], row(4, name="stale name")]  # row 5 is missing
    target = sql.Identifier(table.target_schema, table.target_table)
    with psycopg.connect(**settings.postgres.connection_kwargs()) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(target, sql.SQL(PG_COLUMNS)))
        with conn.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(target)) as copy:
            for values in in_postgres:
                copy.write_row((*as_pg(values), None))

    run_once(settings)

    published = {e.key[0]: e for e in events(read_topic(settings.kafka, table.topic_name))}
    assert sorted(published) == [4, 5], "rows equal in PostgreSQL must hash equal and stay unpublished"
    names = [f.split()[0] for f in SCHEMA.split(", ")]
    for i in (4, 5):
        after = published[i].after
        assert after is not None
        expected = dict(zip(names, row(i), strict=True))
        for column in ("tags", "scores", "address"):
            expected[column] = None  # compared below as JSON text
        got = {k: v for k, v in after.items() if k not in ("tags", "scores", "address")}
        assert _same(got, {k: v for k, v in expected.items() if v is not None or k in got})
        assert after["tags"] == '["x",null,""]'
        assert after["address"] == f'{{"city":"São Paulo","zip":{1000 + i}}}'
    assert {c.name: c.pg_type for c in published[5].columns}["seen"] == "timestamptz"


def _same(got: dict[str, Any], expected: dict[str, Any]) -> bool:
    """Equality that treats NaN as equal to NaN and -0.0 as distinct from 0.0."""
    if got.keys() != expected.keys():
        return False
    for key, value in expected.items():
        other = got[key]
        if isinstance(value, float):
            if (
                not (math.isnan(value) and math.isnan(other))
                and math.copysign(1, value) * value != math.copysign(1, other) * other
            ):
                return False
            if not math.isnan(value) and (value != other or math.copysign(1, value) != math.copysign(1, other)):
                return False
        elif value != other:
            return False
    return True
