"""Declarative mapping: rename, cast, SQL expressions and a broadcast lookup in one select."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from lakesync.config import ColumnMapping, LakesyncSettings, LookupTable, TableMapping
from tests.support.stream_topics import create_delta, events, read_topic

pytestmark = pytest.mark.integration

UF_CSV = str(Path(__file__).parents[3] / "deploy" / "sample_data" / "uf_ibge.csv")


def test_mapping_with_lookup_compiles_to_the_expected_columns(
    spark: Any,
    make_settings: Callable[..., LakesyncSettings],
    mapping: Callable[..., TableMapping],
    run_once: Callable[[LakesyncSettings], None],
) -> None:
    table = mapping(
        key_columns=["person_id"],
        columns=[
            ColumnMapping(name="person_id", source="id"),
            ColumnMapping(name="full_name", expr="initcap(nome)"),
            ColumnMapping(name="state", expr="uf.name"),
            ColumnMapping(name="region", expr="uf.region"),
            ColumnMapping(name="income", source="renda", cast="decimal(12,2)"),
        ],
        lookups=[LookupTable(name="uf", path=UF_CSV, on={"cod_uf": "code"})],
    )
    settings = make_settings(tables=[table])
    create_delta(
        spark,
        table.source,
        [(1, "maria silva", 26, "1234.5"), (2, "joão", 99, "10")],
        "id long, nome string, cod_uf int, renda string",
    )
    run_once(settings)
    got = {e.key: e.after for e in events(read_topic(settings.kafka, table.topic_name))}
    assert got == {
        (1,): {
            "person_id": 1,
            "full_name": "Maria Silva",
            "state": "Pernambuco",
            "region": "Nordeste",
            "income": Decimal("1234.50"),
        },
        # No IBGE state 99: the left join keeps the person with null state fields.
        (2,): {"person_id": 2, "full_name": "João", "state": None, "region": None, "income": Decimal("10.00")},
    }
    columns = {c.name: c.pg_type for c in events(read_topic(settings.kafka, table.topic_name))[0].columns}
    assert columns == {
        "person_id": "bigint",
        "full_name": "text",
        "state": "text",
        "region": "text",
        "income": "numeric(12,2)",
    }


def test_mapping_is_one_projection_without_withcolumn_chains(spark: Any, mapping: Callable[..., TableMapping]) -> None:
    """The compiled plan projects all target columns in one Project node over the join."""
    from streaming.publisher.mapping import compile_mapping

    table = mapping(
        columns=[
            ColumnMapping(name="id"),
            ColumnMapping(name="n", expr="upper(name)"),
            ColumnMapping(name="c", source="city", cast="string"),
        ]
    )
    frame = spark.createDataFrame(
        [(1, "a", "x", "insert", 0, None)],
        "id long, name string, city string, _change_type string, _commit_version long, _commit_timestamp timestamp",
    )
    applied = compile_mapping(spark, table).apply(frame)
    plan = applied._jdf.queryExecution().analyzed().toString()
    assert plan.count("Project [") == 2  # the mapping projection + the quarantine-reason projection
