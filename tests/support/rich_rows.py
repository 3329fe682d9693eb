"""A table with every supported type, as Delta rows and as the PostgreSQL columns they map to."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any

UTC = dt.UTC
SCHEMA = (
    "id long, flag boolean, small short, price decimal(18,4), ratio double, single float, name string, "
    "photo binary, born date, seen timestamp, local timestamp_ntz, tags array<string>, "
    "scores map<string,double>, address struct<city:string,zip:int>"
)
PG_COLUMNS = """id bigint PRIMARY KEY, flag boolean, small smallint, price numeric(18,4), ratio double precision,
    single real, name text, photo bytea, born date, seen timestamptz, local timestamp, tags jsonb, scores jsonb,
    address jsonb, _lakesync_version bigint NOT NULL, _lakesync_commit_ts timestamptz"""
COLUMN_NAMES = [field.split()[0] for field in SCHEMA.split(", ")]


def row(i: int, name: str | None = "ação 😀") -> tuple[Any, ...]:
    """Row `i`: special floats, a negative zero, unicode, pre-1970 dates, micros everywhere."""
    return (
        i,
        i % 2 == 0,
        -i,
        Decimal("12.5000") * i,
        [0.1, -0.0, math.inf, math.nan][i % 4],
        1.5 * i,
        name,
        bytes([0, 255, i % 256]),
        dt.date(1969, 12, 31) + dt.timedelta(days=i),
        dt.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
        dt.datetime(1999, 12, 31, 23, 59, 59, i),
        ["x", None, ""],
        {"z": 1.0 * i, "a": -0.0},
        ("São Paulo", 1000 + i),
    )
